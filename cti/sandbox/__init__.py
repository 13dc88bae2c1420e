"""A real Asterisk 22 for the demo and the tests, run from a cached Debian sid root."""

from cti.sandbox.instance import Instance, InstanceState, default_instance_name
from cti.sandbox.root import cache_dir, ensure_root

__all__ = ["Instance", "InstanceState", "cache_dir", "default_instance_name", "ensure_root"]
