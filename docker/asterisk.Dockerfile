# Asterisk 22 from Debian's package, configured with this repository's asterisk-conf/.
# BASE_IMAGE: any Debian sid image (the public debian:sid-slim; tests/compose passes one imported
# from a debootstrap root where no image registry is reachable).
ARG BASE_IMAGE=debian:sid-slim
FROM ${BASE_IMAGE}
RUN apt-get -o Acquire::Check-Valid-Until=false update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules asterisk-core-sounds-en-gsm asterisk-moh-opsound-gsm openssl \
 && rm -rf /var/lib/apt/lists/*
# Exactly the files the sandbox runs: none of Debian's sample configuration is left to load
# modules or open ports of its own.
RUN rm -rf /etc/asterisk && mkdir /etc/asterisk
COPY asterisk-conf/ /etc/asterisk/
COPY docker/asterisk-entrypoint.sh /usr/local/bin/asterisk-entrypoint
# The sandbox-only simulation files are not part of a deployment.
# The IVR's prompts (sounds/<lang>/cti/*, the Mandarin digits in sounds/zh/digits/) are
# synthesised by the CTI server into the `prompts` volume, mounted here at /var/lib/cti/prompts;
# voicemail and call recordings go to the `media` volume the CTI server reads
# (/var/lib/cti/media, the same path in both containers).
RUN rm -rf /etc/asterisk/sim && chmod +x /usr/local/bin/asterisk-entrypoint \
 && mkdir -p /var/lib/cti/prompts/en/cti /var/lib/cti/prompts/zh /var/lib/cti/media \
             /usr/share/asterisk/sounds/en \
 && ln -s /var/lib/cti/prompts/en/cti /usr/share/asterisk/sounds/en/cti \
 && ln -s /var/lib/cti/prompts/zh /usr/share/asterisk/sounds/zh
# 8089: the softphones' WSS (http.conf; mount the site's certificate at /etc/asterisk/keys/).
# RTP: CTI_RTP_START-CTI_RTP_END (default 10000-10099), written into rtp.conf at start.
EXPOSE 5038/tcp 5060/udp 8089/tcp 10000-10099/udp
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD asterisk -rx "core show uptime" | grep -q "System uptime" || exit 1
# Writes the site's secrets into /etc/asterisk (and refuses to go on with a placeholder left),
# then runs the CMD.
ENTRYPOINT ["/usr/local/bin/asterisk-entrypoint"]
CMD ["asterisk", "-f", "-U", "asterisk", "-G", "asterisk"]
