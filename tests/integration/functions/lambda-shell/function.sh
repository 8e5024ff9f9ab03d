# SPDX-License-Identifier: MIT-0
# The custom-runtime tutorial's handler, as published.
function handler () {
  EVENT_DATA=$1
  echo "$EVENT_DATA" 1>&2;
  RESPONSE="Echoing request: '$EVENT_DATA'"

  echo $RESPONSE
}
