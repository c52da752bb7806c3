"""A third-party client of the embedding server: Google's EZ-WSI DICOMweb, used as a user would.

Google's own client library for Path Foundation, `ez-wsi-dicomweb` (pinned in
`requirements.txt` beside this file; it needs its own virtualenv), opens a DICOM slide from a
DICOMweb store, cuts 224x224 patches from it and from in-memory images, and asks a Path
Foundation endpoint for their embeddings. This script does exactly that, with EZ-WSI's public
API and nothing patched, against a real Orthanc and any endpoint URL, and writes what it got
as JSON, so that a test can compare it with embeddings computed another way.

Why a relay: EZ-WSI 6.1.6 opens a slide with a QIDO-RS search
`.../studies/ST/series/SE/instances?includefield=...` and insists on each instance's
TransferSyntaxUID (0002,0010) in the answer, which Google's store gives and Orthanc 1.10's
DICOMweb plugin leaves out. So the script starts, in-process, a small HTTP relay on
127.0.0.1:--relay-port that forwards each GET to --orthanc and adds "00020010" to every
object of a JSON answer to an `.../instances` search or an `.../metadata` request (the syntax
comes from Orthanc's REST API: `POST /tools/lookup` with the SOP Instance UID, then
`GET /instances/{id}/metadata/TransferSyntax`). Everything else passes byte for byte, with its
status code and Content-Type. The relay forwards the request's Accept and Authorization
headers (and the others but the hop-by-hop ones); it drops Accept-Encoding, so that answers
come uncompressed. EZ-WSI is pointed at http://127.0.0.1:RELAY/dicom-web, so the series_path
it sends to the endpoint names the relay too, and the server reads the slide through it.

Input (--patches), a JSON file:

    {"dicom":  [{"level": L, "x": X, "y": Y[, "resize": [W, H]]}, ...],
     "images": [{"path": "file.png", "x": X, "y": Y}, ...]}

L is the pyramid level, 0 = full resolution (EZ-WSI's levels sorted by width, widest
first); with "resize", the patch is cut from that level resized to W x H (EZ-WSI's
`level.resize(ImageDimensions(W, H))`), which EZ-WSI sends as `image_dimensions`. "path" is a PNG or JPEG file, relative to the patches file's folder or absolute;
EZ-WSI's LocalImage reads it, and sends its pixels inline (extensions.ez_wsi_state). Every
patch is 224x224 at (x, y). All patches go through one call of EZ-WSI's
`patch_embedding.generate_patch_embeddings` with a `PathFoundationsEmbeddingEndpoint`
(endpoint_url=--endpoint, no credentials).

Output (--out), in the order of the input:

    {"dicom":  [{"level", "x", "y", "sop_instance_uid", "embedding": [floats]}, ...],
     "images": [{"path", "x", "y", "embedding": [...]}, ...]}

Exit status 0 on success; on any failure 1, with the exception and its traceback on stderr.

--bearer-token TOKEN: EZ-WSI reaches the store with TokenPassthroughCredentialFactory(TOKEN),
which sends `Authorization: Bearer TOKEN` to the store and puts "bearer_token": TOKEN in each
DICOM instance of the embedding request (the server uses it against the store). In this mode
an exception is an expected outcome: the script writes
`{"error": {"type": <class name>, "message": <str(exception)>, "stage": <where>}}` (stage is
"open_slide", "get_patch" or "embeddings") and exits 0. Note that with a token the store
refuses, EZ-WSI itself fails when it opens the slide (HttpUnauthorizedError), before the
server is asked anything. To have the token reach the server only, add:

--open-without-token: open the slide with no credentials (the relay may add
--relay-basic-auth), then build the slide EZ-WSI sends patches from with the token's
credential factory and the first slide's cached metadata (DicomSlide's json_metadata), so
that EZ-WSI makes no store request with the token and the server is the one to use it.

--relay-basic-auth USER:PASSWORD: the relay adds HTTP basic authentication for Orthanc to the
requests that come without an Authorization header (for an Orthanc with
AuthenticationEnabled; requests that carry one are forwarded as they are).

Example:

    python3 -m venv target/ezwsi-venv
    target/ezwsi-venv/bin/pip install -r tests/ezwsi/requirements.txt
    target/ezwsi-venv/bin/python tests/ezwsi/client.py --orthanc http://127.0.0.1:8042 \\
        --relay-port 8043 --study 1.2.3 --series 1.2.3.4 \\
        --endpoint http://127.0.0.1:8501/predict --patches patches.json --out result.json

--verbose logs each relayed request (method, path, Accept, status, bytes) on stderr.
"""

import argparse
import base64
import http.server
import json
import os
import sys
import threading
import traceback
import urllib.error
import urllib.parse
import urllib.request

import numpy as np

PATCH_SIZE = 224
TRANSFER_SYNTAX_TAG = "00020010"
SOP_INSTANCE_UID_TAG = "00080018"
# Not forwarded by the relay: hop-by-hop headers, Host (urllib sets Orthanc's) and
# Accept-Encoding (the relay edits JSON answers and passes bodies as they come).
DROPPED_REQUEST_HEADERS = {
    "host", "connection", "keep-alive", "proxy-authorization", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade", "accept-encoding", "content-length",
}


class Relay:
    """The DICOMweb relay in front of Orthanc (see the module docstring)."""

    def __init__(self, orthanc, port, basic_auth=None, verbose=False):
        self.orthanc = orthanc.rstrip("/")
        self.basic_auth = None
        if basic_auth:
            self.basic_auth = "Basic " + base64.b64encode(basic_auth.encode()).decode()
        self.verbose = verbose
        self._syntaxes = {}  # SOP Instance UID -> transfer syntax UID
        self._lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _open(self, request):
        """(status, headers, body) of a request to Orthanc, errors included."""
        try:
            with urllib.request.urlopen(request, timeout=300) as answer:
                return answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()

    def _transfer_syntax(self, sop_uid, authorization):
        """The transfer syntax of the instance, from Orthanc's REST API; None if unknown."""
        with self._lock:
            if sop_uid in self._syntaxes:
                return self._syntaxes[sop_uid]
        headers = {"Authorization": authorization} if authorization else {}
        lookup = urllib.request.Request(
            self.orthanc + "/tools/lookup", data=sop_uid.encode(), headers=headers, method="POST")
        status, _, body = self._open(lookup)
        if status != 200:
            self._log(f"relay: /tools/lookup {sop_uid}: HTTP {status}")
            return None
        ids = [o["ID"] for o in json.loads(body) if o.get("Type") == "Instance"]
        if not ids:
            self._log(f"relay: /tools/lookup {sop_uid}: no instance")
            return None
        meta = urllib.request.Request(
            f"{self.orthanc}/instances/{ids[0]}/metadata/TransferSyntax", headers=headers)
        status, _, body = self._open(meta)
        if status != 200:
            self._log(f"relay: TransferSyntax of {ids[0]}: HTTP {status}")
            return None
        syntax = body.decode().strip()
        with self._lock:
            self._syntaxes[sop_uid] = syntax
        return syntax

    def _add_transfer_syntaxes(self, body, authorization):
        """The JSON body with 00020010 added to each DICOM JSON object that lacks it."""
        try:
            data = json.loads(body)
        except ValueError:
            return body
        objects = data if isinstance(data, list) else [data]
        changed = False
        for obj in objects:
            if not isinstance(obj, dict) or TRANSFER_SYNTAX_TAG in obj:
                continue
            try:
                sop_uid = obj[SOP_INSTANCE_UID_TAG]["Value"][0]
            except (KeyError, IndexError, TypeError):
                continue
            syntax = self._transfer_syntax(sop_uid, authorization)
            if syntax:
                obj[TRANSFER_SYNTAX_TAG] = {"vr": "UI", "Value": [syntax]}
                changed = True
        return json.dumps(data).encode() if changed else body

    def _log(self, message):
        if self.verbose:
            print(message, file=sys.stderr, flush=True)

    def _handler(self):
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                headers = {k: v for k, v in self.headers.items() if k.lower() not in DROPPED_REQUEST_HEADERS}
                if relay.basic_auth and "authorization" not in {k.lower() for k in headers}:
                    headers["Authorization"] = relay.basic_auth
                authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
                request = urllib.request.Request(relay.orthanc + self.path, headers=headers)
                try:
                    status, answer_headers, body = relay._open(request)
                except OSError as error:
                    relay._log(f"relay: GET {self.path}: {error}")
                    status, answer_headers, body = 502, {"Content-Type": "text/plain"}, str(error).encode()
                content_type = answer_headers.get("Content-Type")
                route = urllib.parse.urlsplit(self.path).path.rstrip("/")
                if (status == 200 and content_type and "json" in content_type
                        and (route.endswith("/instances") or route.endswith("/metadata"))):
                    body = relay._add_transfer_syntaxes(body, authorization)
                relay._log(f"relay: GET {self.path} Accept: {self.headers.get('Accept')} -> {status}, {len(body)} bytes")
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):
                pass

        return Handler


class StageError(Exception):
    """An exception from EZ-WSI, with the step that raised it."""

    def __init__(self, stage, error):
        super().__init__(f"{stage}: {error}")
        self.stage = stage
        self.error = error


def load_patches(path):
    with open(path) as f:
        spec = json.load(f)
    base = os.path.dirname(os.path.abspath(path))
    dicom = [{"level": int(p["level"]), "x": int(p["x"]), "y": int(p["y"]),
              "resize": [int(v) for v in p["resize"]] if p.get("resize") else None} for p in spec.get("dicom", [])]
    images = []
    for p in spec.get("images", []):
        file = p["path"] if os.path.isabs(p["path"]) else os.path.join(base, p["path"])
        images.append({"path": p["path"], "file": file, "x": int(p["x"]), "y": int(p["y"])})
    return dicom, images


def embed(args, relay_url, dicom, images):
    """Runs EZ-WSI; returns the output object. EZ-WSI's exceptions come as StageError."""
    from ez_wsi_dicomweb import credential_factory
    from ez_wsi_dicomweb import dicom_slide
    from ez_wsi_dicomweb import dicom_web_interface
    from ez_wsi_dicomweb import local_image
    from ez_wsi_dicomweb import patch_embedding
    from ez_wsi_dicomweb import patch_embedding_endpoints
    from ez_wsi_dicomweb import slide_level_map
    from ez_wsi_dicomweb.ml_toolkit import dicom_path

    def token_factory():
        return credential_factory.TokenPassthroughCredentialFactory(args.bearer_token)

    stage = "open_slide"
    try:
        series = dicom_path.FromString(f"{relay_url}/dicom-web/studies/{args.study}/series/{args.series}")
        slide = None
        if dicom:
            if args.bearer_token is not None and not args.open_without_token:
                store_credentials = token_factory()
            else:
                store_credentials = credential_factory.NoAuthCredentialsFactory()
            slide = dicom_slide.DicomSlide(dicom_web_interface.DicomWebInterface(store_credentials), series)
            if args.bearer_token is not None and args.open_without_token:
                # The same slide from its cached metadata (no store request), whose patches
                # carry the token.
                slide = dicom_slide.DicomSlide(
                    dicom_web_interface.DicomWebInterface(token_factory()), series,
                    json_metadata=slide.json_metadata_dict())
            levels = sorted(slide.levels, key=lambda level: level.width, reverse=True)

        stage = "get_patch"
        patches = []
        for p in dicom:
            if not 0 <= p["level"] < len(levels):
                raise ValueError(f"level {p['level']}: the slide has {len(levels)} levels")
            level = levels[p["level"]]
            source = level
            if p["resize"]:
                source = level.resize(slide_level_map.ImageDimensions(*p["resize"]))
            patches.append(slide.get_patch(source, p["x"], p["y"], PATCH_SIZE, PATCH_SIZE))
            # (The patch's coordinates are in the resized level's pixels when resized.)
            instance = None if p["resize"] else level.get_instance_by_point(p["x"], p["y"])
            if instance is None:
                uids = level.get_level_sop_instance_uids()
                p["sop_instance_uid"] = uids[0] if len(uids) == 1 else None
            else:
                p["sop_instance_uid"] = instance.dicom_object.sop_instance_uid
        sources = {}
        for p in images:
            # One LocalImage per file, so that patches of one image share it.
            if p["file"] not in sources:
                sources[p["file"]] = local_image.LocalImage(p["file"])
            patches.append(sources[p["file"]].get_patch(p["x"], p["y"], PATCH_SIZE, PATCH_SIZE))

        stage = "embeddings"
        endpoint = patch_embedding_endpoints.PathFoundationsEmbeddingEndpoint(
            endpoint_url=args.endpoint,
            credential_factory=credential_factory.NoAuthCredentialsFactory(),
        )
        if args.pixels:
            # EZ-WSI's own pixels of each DICOM patch (its frames, its resampling), for a test
            # to embed offline.
            os.makedirs(args.pixels, exist_ok=True)
            for i, patch in enumerate(patches[:len(dicom)]):
                with open(os.path.join(args.pixels, f"dicom-{i}.rgb"), "wb") as f:
                    f.write(np.ascontiguousarray(patch.image_bytes(), dtype=np.uint8).tobytes())
        results = list(patch_embedding.generate_patch_embeddings(endpoint, patches))
    except Exception as error:  # pylint: disable=broad-except
        raise StageError(stage, error) from error

    if len(results) != len(patches):
        raise RuntimeError(f"EZ-WSI returned {len(results)} results for {len(patches)} patches")
    out = {"dicom": [], "images": []}
    for i, (p, result) in enumerate(zip(dicom + images, results)):
        if (result.patch.x, result.patch.y) != (p["x"], p["y"]):
            raise RuntimeError(f"result {i} is for ({result.patch.x}, {result.patch.y}), not ({p['x']}, {p['y']})")
        embedding = [float(v) for v in result.embedding]
        if i < len(dicom):
            out["dicom"].append({"level": p["level"], "x": p["x"], "y": p["y"],
                                 "sop_instance_uid": p["sop_instance_uid"], "embedding": embedding})
        else:
            out["images"].append({"path": p["path"], "x": p["x"], "y": p["y"], "embedding": embedding})
    return out


def write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(
        description="Embeds patches of an Orthanc slide and of images with Google's EZ-WSI (see the module docstring).")
    parser.add_argument("--orthanc", required=True, help="Orthanc's base URL, e.g. http://127.0.0.1:8042")
    parser.add_argument("--relay-port", type=int, default=0, help="the relay's port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--study", help="StudyInstanceUID (needed when there are DICOM patches)")
    parser.add_argument("--series", help="SeriesInstanceUID (needed when there are DICOM patches)")
    parser.add_argument("--endpoint", required=True, help="the Path Foundation predict URL")
    parser.add_argument("--patches", required=True, help="the JSON file of patches to embed")
    parser.add_argument("--out", required=True, help="where to write the results")
    parser.add_argument("--bearer-token", help="send this token to the DICOM store; EZ-WSI errors go to --out")
    parser.add_argument("--open-without-token", action="store_true",
                        help="with --bearer-token: open the slide without it; only the endpoint gets the token")
    parser.add_argument("--relay-basic-auth", metavar="USER:PASSWORD",
                        help="the relay adds these basic credentials to requests that have no Authorization")
    parser.add_argument("--pixels", metavar="DIR",
                        help="also write EZ-WSI's pixels of each DICOM patch to DIR/dicom-<i>.rgb (RGB8)")
    parser.add_argument("--verbose", action="store_true", help="log the relayed requests on stderr")
    args = parser.parse_args()
    if args.open_without_token and args.bearer_token is None:
        parser.error("--open-without-token needs --bearer-token")

    try:
        dicom, images = load_patches(args.patches)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"client.py: cannot read {args.patches}: {error!r}", file=sys.stderr)
        return 1
    if dicom and not (args.study and args.series):
        parser.error("DICOM patches need --study and --series")

    relay = Relay(args.orthanc, args.relay_port, args.relay_basic_auth, args.verbose).start()
    try:
        out = embed(args, relay.url, dicom, images)
    except StageError as failure:
        error = failure.error
        if args.bearer_token is not None:
            write_json(args.out, {"error": {"type": type(error).__name__, "message": str(error),
                                            "stage": failure.stage}})
            print(f"client.py: EZ-WSI raised {type(error).__name__} ({failure.stage}): {error}", file=sys.stderr)
            return 0
        print(f"client.py: EZ-WSI failed ({failure.stage}): {type(error).__name__}: {error}", file=sys.stderr)
        traceback.print_exception(error, file=sys.stderr)
        return 1
    except Exception as error:  # pylint: disable=broad-except
        print(f"client.py: failed: {type(error).__name__}: {error}", file=sys.stderr)
        traceback.print_exc()
        return 1
    finally:
        relay.stop()
    write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
