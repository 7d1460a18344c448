"""broker.kernel_socket with real ZMQ sockets: messages in order, none lost, none stuck."""

from __future__ import annotations

import asyncio
from pathlib import Path

import zmq
import zmq.asyncio

from broker.kernel_socket import KernelSocket


async def test_sends_past_the_high_water_mark_wait_and_arrive_in_order(tmp_path: Path) -> None:
    context = zmq.asyncio.Context()
    url = f"ipc://{tmp_path}/s"
    dealer = KernelSocket(context, zmq.DEALER, lambda frames: None)
    dealer.sock.sndhwm = 1
    dealer.connect(url)  # nobody listens yet: the first message fills the pipe
    sends = [asyncio.ensure_future(dealer.send_multipart([b"%d" % i])) for i in range(5)]
    await asyncio.sleep(0.05)
    assert not all(s.done() for s in sends)  # the socket is full: the rest wait their turn
    router = context.socket(zmq.ROUTER)
    router.bind(url)
    received = [(await router.recv_multipart())[1] for _ in range(5)]
    await asyncio.wait_for(asyncio.gather(*sends), 5)
    assert received == [b"0", b"1", b"2", b"3", b"4"]
    dealer.close()
    router.close(linger=0)
    context.term()


async def test_every_message_of_a_burst_is_received_in_order(tmp_path: Path) -> None:
    context = zmq.asyncio.Context()
    url = f"ipc://{tmp_path}/p"
    publisher = context.socket(zmq.PUB)
    publisher.sndhwm = 0
    publisher.bind(url)
    got: list[bytes] = []
    subscribed = asyncio.Event()
    done = asyncio.Event()

    def on_message(frames: list[zmq.Frame]) -> None:
        if frames[0].bytes == b"hello":
            subscribed.set()
            return
        got.append(frames[0].bytes)
        if len(got) == 5000:
            done.set()

    subscriber = KernelSocket(context, zmq.SUB, on_message)
    subscriber.sock.rcvhwm = 0
    subscriber.sock.subscribe(b"")
    subscriber.connect(url)
    while not subscribed.is_set():  # a SUB's subscription takes a moment to reach the PUB
        await publisher.send(b"hello")
        await asyncio.sleep(0.01)
    for i in range(5000):  # many more than one wake-up drains (64)
        await publisher.send(b"%d" % i)
    await asyncio.wait_for(done.wait(), 10)
    assert got == [b"%d" % i for i in range(5000)]
    subscriber.close()
    publisher.close(linger=0)
    context.term()
