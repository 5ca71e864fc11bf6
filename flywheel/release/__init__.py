"""Release: TUF-signed releases per channel in the lake, staged rollout, health gates.

    keys.py        Ed25519 keys per TUF role; keygen, loading online keys from secrets
    repository.py  a channel's TUF repository (tuf.api.metadata): create, publish, timestamp, rotate
    publish.py     releases and rule sets as targets; the signed channel.json (rollout stage)
    cli.py         `flywheel release ...`

The device side is edge_agent/ota (python-tuf's ngclient over the lake).
"""
