"""The app as an MCP server: an AI assistant lists the sketch-to-face tool and calls it.

Runs an MCP client (the `mcp` package, Streamable HTTP) against the real app on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "01_short_hair.png"


def data_url(path: Path) -> str:
    """How an assistant hands over a file it holds (Gradio refuses to fetch loopback URLs)."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def run_session(app_url: str, work):
    """Open an MCP session with the app, run ``await work(session)``, return its result."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def main():
        async with streamable_http_client(app_url.rstrip("/") + "/gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await work(session)

    return asyncio.run(main())


def test_the_schema_lists_the_tool_with_its_description_and_typed_inputs(app_url):
    tools = {tool["name"]: tool for tool in httpx.get(app_url.rstrip("/") + "/gradio_api/mcp/schema", timeout=30).json()}
    assert set(tools) == {"sketch_to_face", "drawing_to_face"}
    tool = tools["sketch_to_face"]
    assert tool["description"].startswith("Turn a face sketch")
    properties = tool["inputSchema"]["properties"]
    assert properties["sketch"]["type"] == "string" and "url" in properties["sketch"]["format"]
    assert properties["sketch"]["description"].startswith("The sketch image")
    assert properties["enhance"]["type"] == "boolean" and "GFPGAN" in properties["enhance"]["description"]
    assert tool["inputSchema"]["required"] == ["sketch"]


def test_an_mcp_client_lists_the_tool_and_gets_a_face_back(app_url, served_pipeline):
    async def work(session):
        listed = await session.list_tools()
        result = await session.call_tool("sketch_to_face", {"sketch": data_url(EXAMPLE), "enhance": False})
        return listed, result

    listed, result = run_session(app_url, work)
    assert "sketch_to_face" in [tool.name for tool in listed.tools]
    assert not result.isError, result.content
    images = [content for content in result.content if content.type == "image"]
    texts = [content.text for content in result.content if content.type == "text"]
    assert len(images) == 1 and images[0].mimeType == "image/png"
    face = Image.open(io.BytesIO(base64.b64decode(images[0].data))).convert("RGB")
    expected = np.asarray(served_pipeline(str(EXAMPLE)), dtype=int)
    assert np.abs(np.asarray(face, dtype=int) - expected).max() <= 2
    # The status comes along as text: GFPGAN was not asked for.
    assert any("'restoration': {'requested': False, 'applied': False, 'reason': None}" in text for text in texts)


def test_an_mcp_client_learns_why_a_bad_file_was_refused(app_url, tmp_path):
    text_file = tmp_path / "notes.png"
    text_file.write_bytes(b"Shopping list: eggs, milk, pencils.\n" * 30)

    async def work(session):
        return await session.call_tool("sketch_to_face", {"sketch": data_url(text_file)})

    result = run_session(app_url, work)
    assert result.isError
    assert "The file is not an image we can read" in " ".join(content.text for content in result.content)
