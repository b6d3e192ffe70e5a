"""Caption metrics against reference captions: corpus BLEU-4 and CIDEr-D with the formulas of
the COCO caption evaluation (``pycocoevalcap``), in plain Python; its tokenisation differs.

Texts are lower-cased and split into words, punctuation dropped (a simple stand-in for the
PTB tokenizer the COCO toolkit runs first). Each candidate has one or more references.

- ``bleu``: corpus-level (Papineni et al. 2002): clipped n-gram counts summed over the corpus,
  geometric mean of the 1..4-gram precisions, brevity penalty with each candidate's closest
  reference length (the shorter on ties). 0 when some precision is 0 (COCO's toolkit gives
  ~1e-9 there).
- ``cider``: CIDEr-D (Vedantam et al. 2015, the COCO variant): TF-IDF n-gram vectors with
  document frequencies over the corpus's reference sets, the candidate's tf-idf clipped by the
  reference's, a Gaussian penalty (sigma 6) on the length difference, averaged over n = 1..4
  and over references, times 10. As in the toolkit, "length" counts bigrams.
"""

import collections
import math
import re
from typing import Sequence

Ngrams = collections.Counter


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text`` (punctuation dropped)."""
    return re.findall(r"[^\W_]+", text.lower())


def ngrams(tokens: Sequence[str], max_n: int = 4) -> Ngrams:
    """Counts of every 1..max_n-gram of ``tokens`` (tuples as keys)."""
    return Ngrams(tuple(tokens[i:i + n]) for n in range(1, max_n + 1)
                  for i in range(len(tokens) - n + 1))


def _check(candidates, references) -> None:
    if len(candidates) != len(references) or not candidates:
        raise ValueError(f"Caption metrics need one reference list per candidate and at least one "
                         f"candidate; got {len(candidates)} candidates, {len(references)} lists.")
    if any(len(refs) == 0 for refs in references):
        raise ValueError("Every candidate needs at least one reference caption.")


def bleu(candidates: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4) -> float:
    """Corpus BLEU-``max_n`` of ``candidates`` (one string each) against ``references``."""
    _check(candidates, references)
    correct, total = [0] * max_n, [0] * max_n
    cand_len = ref_len = 0
    for cand, refs in zip(candidates, references):
        tokens, ref_tokens = words(cand), [words(r) for r in refs]
        counts = ngrams(tokens, max_n)
        best = Ngrams()
        for ref in ref_tokens:
            best |= ngrams(ref, max_n)  # elementwise max: the clipping counts
        for gram, count in counts.items():
            correct[len(gram) - 1] += min(count, best[gram])
        for n in range(1, max_n + 1):
            total[n - 1] += max(len(tokens) - n + 1, 0)
        cand_len += len(tokens)
        ref_len += min((abs(len(r) - len(tokens)), len(r)) for r in ref_tokens)[1]
    if min(correct) == 0:
        return 0.0
    log_precision = sum(math.log(c / t) for c, t in zip(correct, total)) / max_n
    brevity = 1.0 if cand_len >= ref_len else math.exp(1.0 - ref_len / max(cand_len, 1))
    return brevity * math.exp(log_precision)


def _tfidf(counts: Ngrams, doc_freq: dict, log_docs: float, max_n: int):
    """Per n: the tf-idf vector, its norm; and the bigram count (the toolkit's "length")."""
    vectors = [dict() for _ in range(max_n)]
    for gram, tf in counts.items():
        vectors[len(gram) - 1][gram] = tf * (log_docs - math.log(max(1.0, doc_freq.get(gram, 0))))
    norms = [math.sqrt(sum(v * v for v in vec.values())) for vec in vectors]
    bigrams = sum(tf for gram, tf in counts.items() if len(gram) == 2)
    return vectors, norms, bigrams


def _similarity(cand, ref, max_n: int, sigma: float) -> float:
    """Mean over n of the clipped cosine similarity, times the length penalty."""
    (cv, cn, clen), (rv, rn, rlen) = cand, ref
    penalty = math.exp(-((clen - rlen) ** 2) / (2 * sigma ** 2))
    total = 0.0
    for n in range(max_n):
        dot = sum(min(v, rv[n].get(g, 0.0)) * rv[n].get(g, 0.0) for g, v in cv[n].items())
        if cn[n] and rn[n]:
            dot /= cn[n] * rn[n]
        total += dot * penalty
    return total / max_n


def cider_scores(candidates: Sequence[str], references: Sequence[Sequence[str]],
                 max_n: int = 4, sigma: float = 6.0) -> list[float]:
    """CIDEr-D of each candidate; document frequencies come from this corpus's references."""
    _check(candidates, references)
    ref_counts = [[ngrams(words(r), max_n) for r in refs] for refs in references]
    doc_freq = collections.Counter(g for refs in ref_counts for g in set().union(*refs))
    log_docs = math.log(len(candidates))
    scores = []
    for cand, refs in zip(candidates, ref_counts):
        vec = _tfidf(ngrams(words(cand), max_n), doc_freq, log_docs, max_n)
        sims = [_similarity(vec, _tfidf(r, doc_freq, log_docs, max_n), max_n, sigma) for r in refs]
        scores.append(10.0 * sum(sims) / len(refs))
    return scores


def cider(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus CIDEr-D: the mean of ``cider_scores``."""
    scores = cider_scores(candidates, references)
    return sum(scores) / len(scores)
