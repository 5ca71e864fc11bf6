"""The dev stack's port picker: every port of one server (a Ray node's 31) distinct and in range."""

from __future__ import annotations

import socket

from flywheel.devstack.ports import free_ports


def test_a_draw_of_many_ports_has_no_repeat_and_respects_the_bound() -> None:
    for _ in range(20):
        ports = free_ports(64, below=55000)
        assert len(set(ports)) == 64
        assert all(1024 <= p < 55000 for p in ports)


def test_drawn_ports_are_free_to_bind() -> None:
    for port in free_ports(8):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
