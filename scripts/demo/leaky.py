"""A request handler that keeps what it should not: every request's payload
goes into a module-level history list, freed only when the process exits.
`leakhunt run -- python3 scripts/demo/leaky.py` names the line."""
import json

history = []


def remember(request):
    history.append(json.dumps(request))  # the leak: nothing ever trims it


def handle(i):
    request = {"id": i, "user": f"user{i % 50}", "items": list(range(i % 20))}
    remember(request)
    return len(request["items"])


if __name__ == "__main__":
    print(sum(handle(i) for i in range(20000)))
