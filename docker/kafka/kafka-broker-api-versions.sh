#!/bin/bash
# As the official image's script: kafka-broker-api-versions.sh --bootstrap-server HOST:PORT
exec java -Xmx128m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp '/opt/kafka/libs/*' \
  org.apache.kafka.tools.BrokerApiVersionsCommand "$@"
