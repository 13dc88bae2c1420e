#!/bin/sh
# Site values that are not in the image: the AMI secret, where the CTI server's FastAGI listens,
# and AMI on the container network (the CTI server runs in another container).
set -eu
: "${CTI_AMI_SECRET:?set CTI_AMI_SECRET}"
sed -i "s/^bindaddr = 127.0.0.1/bindaddr = 0.0.0.0/; s/^secret = change-me-on-every-site/secret = ${CTI_AMI_SECRET}/" /etc/asterisk/manager.conf
sed -i "s/^CTI_AGI_HOST = .*/CTI_AGI_HOST = ${CTI_AGI_HOST:-cti}/; s/^CTI_AGI_PORT = .*/CTI_AGI_PORT = ${CTI_AGI_PORT:-4573}/" /etc/asterisk/extensions.conf
exec asterisk -f -U asterisk -G asterisk
