#!/bin/sh
# keepalived MISC_CHECK: exit 0 when the codis-proxy at $1:$2 answers PING with PONG (an
# online proxy), 1 otherwise (down, or up but not yet taken online by the dashboard).
# Install as /usr/local/codis/bin/check-proxy.sh (needs redis-cli: apt-get install redis-tools).
# With session_auth set, add: -a "$CODIS_SESSION_AUTH" --no-auth-warning
[ "$(timeout 2 redis-cli -h "$1" -p "$2" PING 2>/dev/null)" = "PONG" ]
