"""The IVR: a FastAGI server that runs menus (data) for every inbound call."""
