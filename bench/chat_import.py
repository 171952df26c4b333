"""How long importing a big ChatGPT export takes (issue 19): parse, check and write in one
transaction.

    .venv/bin/python bench/chat_import.py [--conversations 300] [--exchanges 30]

Builds a ChatGPT-shaped ``conversations.json`` in memory (every conversation: a hidden system
node, then user/assistant exchanges with a regenerated answer every fifth one, code in the
answers), imports it into a throwaway SQLite database and prints the file size, the turns
created and the seconds taken (median of --repeat runs, each into an empty database).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard_render import setup_django  # the same throwaway database set-up


def export_document(conversations: int, exchanges: int) -> bytes:
    def node(key, parent, role, text, when):
        message = None
        if role:
            message = {
                "id": key,
                "author": {"role": role, "name": None, "metadata": {}},
                "create_time": when,
                "content": {"content_type": "text", "parts": [text]},
                "status": "finished_successfully",
                "metadata": {"model_slug": "gpt-4o"} if role == "assistant" else {},
                "recipient": "all",
            }
        return key, parent, message

    document = []
    for c in range(conversations):
        nodes = [node("root", None, None, "", 0), node("sys", "root", "system", "", 1)]
        parent = "sys"
        for e in range(exchanges):
            when = 1_700_000_000 + c * 10_000 + e * 10
            nodes.append(node(f"u{e}", parent, "user", f"Question {e} about topic {c}?", when))
            answer = f"Answer {e}.\n\n```python\nprint({e} * {c})\n```\n" + "Some prose. " * 40
            nodes.append(node(f"a{e}", f"u{e}", "assistant", answer, when + 1))
            if e % 5 == 0:
                nodes.append(node(f"b{e}", f"u{e}", "assistant", "Another answer.", when + 2))
            parent = f"a{e}"
        mapping = {
            key: {"id": key, "message": m, "parent": p, "children": []} for key, p, m in nodes
        }
        for key, p, _ in nodes:
            if p:
                mapping[p]["children"].append(key)
        document.append(
            {
                "title": f"Chat {c}",
                "create_time": 1_700_000_000 + c,
                "mapping": mapping,
                "current_node": parent,
            }
        )
    return json.dumps(document).encode()


def measure(conversations: int = 300, exchanges: int = 30, repeat: int = 3) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        setup_django(data_dir)
        from django.contrib.auth import get_user_model

        from chat.models import Thread, Turn
        from chat.services import importing

        data = export_document(conversations, exchanges)
        user = get_user_model().objects.create_user("importer", password="bench-password-42")
        timings, turns = [], 0
        for _ in range(repeat):
            Thread.objects.all().delete()
            started = time.perf_counter()
            importing.import_upload(user, io.BytesIO(data), len(data))
            timings.append(time.perf_counter() - started)
            turns = Turn.objects.count()
        return {
            "file_mb": round(len(data) / 1024 / 1024, 1),
            "conversations": conversations,
            "turns": turns,
            "import_seconds": round(statistics.median(timings), 2),
            "turns_per_second": round(turns / statistics.median(timings)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=300)
    parser.add_argument("--exchanges", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name, value in measure(args.conversations, args.exchanges, args.repeat).items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
