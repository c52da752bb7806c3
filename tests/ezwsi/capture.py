"""A fake Path Foundation endpoint that records what its client sends.

For developing and inspecting `client.py` (or any EZ-WSI user) without the real embedding
server. It serves plain HTTP on 127.0.0.1:

- POST (any path): saves the request body as DIR/request-NNNN.json and its headers as
  DIR/request-NNNN.headers.json (NNNN counts from 0001), then answers 200 with a well-formed
  Path Foundation response: one prediction per instance, each with one embedding of 384 zeros
  per patch coordinate, echoing the coordinate (width and height default to 224). A body that
  is not JSON gets 400 {"error": "No JSON body."}, as Google's server answers.
  With --error-code CODE, every instance gets `{"error": {"code": CODE, "description":
  "capture.py was told to fail"}}` instead (to see how a client reports instance errors).
- GET (any path): 200 "ok", like the health route.

Usage:

    python3 tests/ezwsi/capture.py --port 8501 --dir /tmp/ezwsi_capture

Stdlib only. The port 0 picks a free one; the chosen port is printed on the first line of
stdout ("listening on http://127.0.0.1:PORT") so that a caller can read it.
"""

import argparse
import http.server
import itertools
import json
import os
import sys
import threading

EMBEDDING_SIZE = 384


def answer_for(request, error_code=None):
    """Returns the response object for a parsed request body."""
    predictions = []
    for instance in request.get("instances") or []:
        if error_code:
            predictions.append({"error": {"code": error_code, "description": "capture.py was told to fail"}})
            continue
        embeddings = []
        for coordinate in instance.get("patch_coordinates") or []:
            echoed = {
                "x_origin": coordinate.get("x_origin", 0),
                "y_origin": coordinate.get("y_origin", 0),
                "width": coordinate.get("width", 224),
                "height": coordinate.get("height", 224),
            }
            embeddings.append({"patch_coordinate": echoed, "embedding_vector": [0.0] * EMBEDDING_SIZE})
        predictions.append({"result": {"patch_embeddings": embeddings}})
    return {"predictions": predictions}


def make_handler(directory, error_code=None):
    counter = itertools.count(1)
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status, content_type, body):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send(200, "text/plain", b"ok")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with lock:
                n = next(counter)
            os.makedirs(directory, exist_ok=True)
            stem = os.path.join(directory, f"request-{n:04d}")
            with open(stem + ".json", "wb") as f:
                f.write(body)
            with open(stem + ".headers.json", "w") as f:
                json.dump({"path": self.path, "headers": dict(self.headers.items())}, f, indent=1)
            try:
                request = json.loads(body)
                if not isinstance(request, dict):
                    raise ValueError("not an object")
            except ValueError:
                self._send(400, "application/json", b'{"error": "No JSON body."}')
                return
            self._send(200, "application/json", json.dumps(answer_for(request, error_code)).encode())

        def log_message(self, format, *args):
            sys.stderr.write("capture: " + (format % args) + "\n")

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--dir", required=True, help="where to write the request bodies")
    parser.add_argument("--error-code", help="answer every instance with this error code")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.dir, args.error_code))
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
