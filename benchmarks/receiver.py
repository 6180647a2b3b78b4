"""A fast webhook receiver for the benchmarks (raw ASGI under uvicorn): it answers 200 to
every POST, counts them, and logs when each job's callback arrived (GET /log).
"""

from __future__ import annotations

import json
import time
from typing import Any

arrivals: dict[str, float] = {}
count = 0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global count
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "POST":
        count += 1
        job_id = json.loads(body).get("job_id")
        if job_id:
            arrivals.setdefault(job_id, time.time())
        answer = b"{}"
    else:
        answer = json.dumps({"count": count, "arrivals": arrivals}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": answer})
