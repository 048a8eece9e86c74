#!/bin/sh
# Generate the JavaScript code this plugin imports into ./gen: the greeter's service
# (../greet/proto, or GREET_PROTO) and the plugin protocol's own services, from the .proto
# files installed with plugin-di (`plugin-di proto path`). protoc is grpcio-tools' (the
# codegen extra: pip install 'plugin-di[codegen]'), or PROTOC; protoc-gen-es comes from npm.
set -eu
cd "$(dirname "$0")"
PROTOC=${PROTOC:-python -m grpc_tools.protoc}
rm -rf gen && mkdir gen
$PROTOC -I "${GREET_PROTO:-../greet/proto}" -I "$(plugin-di proto path)" \
  --plugin=protoc-gen-es=node_modules/.bin/protoc-gen-es \
  --es_out=gen --es_opt=target=js+dts \
  greet/v1/greet.proto connectplugin/v1/handshake.proto connectplugin/v1/lifecycle.proto
