"""The baseline of the HTTP benchmark: a hello-world FastAPI PATCH with a pydantic body."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Greeting(BaseModel):
    name: str


@app.patch("/hello")
async def hello(greeting: Greeting) -> dict[str, str]:
    return {"hello": greeting.name}
