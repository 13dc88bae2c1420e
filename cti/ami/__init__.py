"""The AMI link to Asterisk: the only package that imports panoramisk."""
