# SPDX-License-Identifier: Apache-2.0
# A stdio function in Python: a JSON request on stdin, a JSON answer on stdout.
#   husk pack -f erofs -o py.erofs /usr/bin/python3 $PWD/python-json.py
#   husk fn deploy hello --image $PWD/py.erofs --zygote -- /usr/bin/python3 $PWD/python-json.py
import json, os, sys

req = json.loads(sys.stdin.read() or "{}")
json.dump({"hello": req.get("name", "world"), "method": os.environ.get("Http_Method")}, sys.stdout)
