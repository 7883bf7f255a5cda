"""What the reference-vector generators share: the case layout of tests/reference_vectors.h, and
a command line that writes the file or, with --check, compares it with what it would write."""

import argparse


class CaseWriter:
    """Lines of a reference-vector file; subclasses add attr() and tensor() in their number format."""

    def __init__(self):
        self.lines = []

    def line(self, text):
        self.lines.append(text)

    def case(self, name, kind):
        self.line("")
        self.line(f"case {name}")
        self.line(f'  sattr kind "{kind}"')

    def end(self):
        self.line("end")

    def text(self):
        return "\n".join(self.lines) + "\n"


def main(description, default_output, generate):
    """Writes generate()'s text to --output (default_output), or compares it with --check."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output", default=default_output)
    parser.add_argument("--check", action="store_true",
                        help="compare with the existing file instead of writing it")
    args = parser.parse_args()
    text = generate().encode("utf-8")
    if args.check:
        with open(args.output, "rb") as f:
            same = f.read() == text
        print(f"{args.output}: {'up to date' if same else 'DIFFERS'}")
        return 0 if same else 1
    with open(args.output, "wb") as f:
        f.write(text)
    print(f"wrote {args.output} ({len(text)} bytes)")
    return 0
