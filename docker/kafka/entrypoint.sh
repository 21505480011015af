#!/bin/bash
# KAFKA_FOO_BAR=value -> foo.bar=value, as the official image reads them; formats the log
# directory once (a cluster id from CLUSTER_ID, or drawn), then runs the broker in the foreground.
set -euo pipefail
props=/opt/kafka/config/server.properties
: > "$props"
while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_JVM_PERFORMANCE_OPTS|KAFKA_LOG4J_OPTS) continue ;;
    KAFKA_*) key="${name#KAFKA_}"; key="${key,,}"; echo "${key//_/.}=$value" >> "$props" ;;
  esac
done < <(env)
logs="$(sed -n 's/^log\.dirs=//p' "$props")"
logs="${logs:-/var/lib/kafka/data}"
jvm=(${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m} -XX:+UseG1GC -Djava.awt.headless=true
     -Dorg.slf4j.simpleLogger.defaultLogLevel=warn)
if [[ ! -f "$logs/meta.properties" ]]; then
  id="${CLUSTER_ID:-$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' | sed 's/^-/A/')}"
  java "${jvm[@]}" -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format -t "$id" -c "$props" >/dev/null
fi
exec java "${jvm[@]}" -cp '/opt/kafka/libs/*' kafka.Kafka "$props"
