#!/bin/sh
echo "installing gh ${PARAM_GH_CLI_VERSION}"
