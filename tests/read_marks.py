"""Times OpenIM's /msg/mark_conversation_as_read against a running jetim: CALLS calls, each
for another user and the conversation of theirs with the highest max seq, marked read up to
that seq, one every 20 ms. Prints p50/p90/p99/max. Used by tests/read-marks.sh.

    python3 tests/read_marks.py http://127.0.0.1:10002 150
"""

import json
import os
import sys
import time
import urllib.request


def call(base, path, body, token=None):
    headers = {"Content-Type": "application/json", "operationID": f"marks{time.time_ns()}"}
    if token:
        headers["token"] = token
    request = urllib.request.Request(base + path, json.dumps(body).encode(), headers)
    with urllib.request.urlopen(request, timeout=10) as answer:
        reply = json.load(answer)
    if reply.get("errCode"):
        raise RuntimeError(f"{path}: {reply}")
    return reply.get("data") or {}


def main():
    base, calls = sys.argv[1], int(sys.argv[2])
    secret = os.environ.get("JETIM_AUTH__SECRET", "openIM123")
    admin = call(base, "/auth/get_admin_token", {"secret": secret, "userID": "imAdmin"})["token"]
    page = {"pagination": {"pageNumber": 1, "showNumber": calls}}
    users = [user["userID"] for user in call(base, "/user/get_users", page, admin)["users"]]
    took = []
    for user in users:
        seqs = call(
            base, "/msg/get_conversations_has_read_and_max_seq", {"userID": user}, admin
        ).get("seqs") or {}
        if not seqs:
            continue
        conversation, state = max(seqs.items(), key=lambda item: item[1]["maxSeq"])
        if state["maxSeq"] < 1:
            continue
        body = {"conversationID": conversation, "userID": user, "hasReadSeq": state["maxSeq"]}
        started = time.perf_counter()
        call(base, "/msg/mark_conversation_as_read", body, admin)
        took.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
    if not took:
        sys.exit("no user had a conversation with messages to mark read")
    took.sort()

    def at(share):
        return took[min(len(took) - 1, int(share * len(took)))]

    print(
        f"mark_conversation_as_read: {len(took)} calls, p50 {at(0.5):.1f} ms, "
        f"p90 {at(0.9):.1f} ms, p99 {at(0.99):.1f} ms, max {took[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
