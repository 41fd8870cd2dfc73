"""The benchmark's load generator reads responses right, however TCP splits them."""

from __future__ import annotations

import asyncio

from bench.loadgen import run


async def test_responses_split_or_joined_are_counted_once_each() -> None:
    served = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                served += 1
                status = b"200 OK" if served % 3 else b"503 Service Unavailable"
                body = b'{"n":%d}' % served
                answer = b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body)
                if served % 2:  # split mid-header and mid-body
                    for part in (answer[:10], answer[10:-3], answer[-3:]):
                        writer.write(part)
                        await writer.drain()
                        await asyncio.sleep(0)
                else:
                    writer.write(answer)
        except asyncio.IncompleteReadError:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await run(
            "127.0.0.1", port, lambda i: ("/x", b"body %d" % i), connections=3, seconds=0.3,
            keep_bodies=True,
        )  # fmt: skip
    assert result.count == served == len(result.bodies) > 10
    assert sum(result.statuses.values()) == result.count
    assert result.statuses[503] == served // 3
    assert sorted(int(b[5:-1]) for b in result.bodies) == list(range(1, served + 1))
