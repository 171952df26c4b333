"""Turns: a message sent, answered by the gateway, stored and shown live.

``launch`` (the entry points: send, branch, answer a tool call) → ``planning`` (the ORM work
before a turn starts) → ``runner`` (one turn's upstream steps and its state, published through
``chat.live``) → ``store`` (checkpoints and the end of a turn, with retries); ``registry`` holds
the turns running in this process, stops and snapshots them on any worker, drains them at
shutdown and reaps dead workers' turns.
"""
