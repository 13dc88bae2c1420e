# Asterisk 22 from Debian's package, configured with this repository's asterisk-conf/.
FROM debian:sid-slim
RUN apt-get -o Acquire::Check-Valid-Until=false update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules asterisk-core-sounds-en-gsm asterisk-moh-opsound-gsm openssl \
 && rm -rf /var/lib/apt/lists/*
COPY asterisk-conf/ /etc/asterisk/
COPY docker/asterisk-entrypoint.sh /usr/local/bin/asterisk-entrypoint
# The sandbox-only simulation files are not part of a deployment.
RUN rm -rf /etc/asterisk/sim && chmod +x /usr/local/bin/asterisk-entrypoint
# 8089: the softphones' WSS (http.conf; mount the site's certificate at /etc/asterisk/keys/).
EXPOSE 5038/tcp 5060/udp 8089/tcp 10000-20000/udp
# Writes the site's secrets into /etc/asterisk (and refuses to go on with a placeholder left),
# then runs the CMD.
ENTRYPOINT ["/usr/local/bin/asterisk-entrypoint"]
CMD ["asterisk", "-f", "-U", "asterisk", "-G", "asterisk"]
