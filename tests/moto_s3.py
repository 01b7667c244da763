"""Run moto's S3 server with conditional writes as atomic as AWS S3 makes them.

``python tests/moto_s3.py -H 127.0.0.1 -p PORT`` is ``python -m moto.server`` (the same
server, the same arguments) with one difference. moto 5.2 answers a ``PUT`` with
``If-None-Match: *`` by looking the key up and then storing the object
(``moto/s3/responses.py``, ``S3Response.put_object``), and its server handles requests in
threads, so two racing creates of one key can both succeed. AWS S3 guarantees that exactly one
succeeds and the others get ``412 Precondition Failed``, and wspace's commit protocol relies
on that. CI caught moto giving two winners once in 50 rounds of
``tests/test_backend_conformance.py``'s create race. Here every object ``PUT`` (and the
completion of multipart uploads, which checks the same header) runs under one lock, which
makes the check and the write one step, as on AWS; every other request runs as before.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from moto import server
from moto.s3.responses import S3Response

_PUT_LOCK = threading.Lock()


def _serialised(method: Any) -> Any:
    @functools.wraps(method)
    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        with _PUT_LOCK:
            return method(self, *args, **kwargs)

    return run


S3Response.put_object = _serialised(S3Response.put_object)  # type: ignore[method-assign]
S3Response._key_response_post = _serialised(S3Response._key_response_post)  # type: ignore[method-assign]

if __name__ == "__main__":
    server.main()
