"""Knowledge-base and CMDB matching for the screen pop (4.2 g, 6.3.2): Chinese and English.

Chinese has no spaces, so text is segmented with jieba (its search mode also yields the shorter
words inside long ones: 邮箱登录 -> 邮箱, 登录, 邮箱登录); English is lower-cased words. Documents
are ranked with Okapi BM25. The index is rebuilt when the articles or items change.
"""

import asyncio
import contextlib
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jieba
from sqlalchemy import select

from cti.db import SessionMaker
from desk.models import ConfigItem, KnowledgeArticle

jieba.setLogLevel(logging.WARNING)

RETIRED = "retired"  # a configuration item's status once it is out of service for good

_WORD = re.compile(r"[0-9a-z]+|[\u4e00-\u9fff]+")
STOP = frozenset(
    [
        "的",
        "了",
        "是",
        "在",
        "我",
        "你",
        "他",
        "她",
        "它",
        "和",
        "与",
        "及",
        "或",
        "也",
        "就",
        "都",
        "而",
        "但",
        "不",
        "没有",
        "吗",
        "呢",
        "啊",
        "吧",
        "请",
        "一下",
        "一个",
        "怎么",
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "is",
        "are",
        "be",
        "can",
        "cannot",
        "my",
        "i",
        "it",
        "not",
        "with",
        "how",
        "what",
    ]
)
K1, B = 1.5, 0.75


def tokens(text: str) -> list[str]:
    """Search terms of a text (Chinese segmented, English lower-cased, stop words dropped)."""
    out = []
    for chunk in _WORD.findall(text.lower()):
        if chunk[0].isascii():
            if chunk not in STOP:
                out.append(chunk)
            continue
        for word in jieba.cut_for_search(chunk):
            if word not in STOP and (len(word) > 1 or word.isalnum()):
                out.append(word)
    return out


@dataclass(frozen=True)
class Hit:
    """A ranked match."""

    key: str  # "kb:12" or "ci:3"
    score: float


class Bm25Index:
    """An in-memory BM25 index over (key, text) documents."""

    def __init__(self, docs: Iterable[tuple[str, str]]) -> None:
        self.keys: list[str] = []
        self.freqs: list[Counter[str]] = []
        self.lengths: list[int] = []
        df: Counter[str] = Counter()
        for key, text in docs:
            terms = tokens(text)
            self.keys.append(key)
            self.freqs.append(Counter(terms))
            self.lengths.append(len(terms))
            df.update(set(terms))
        n = len(self.keys)
        self.avg = (sum(self.lengths) / n) if n else 0.0
        self.idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def search(self, query: str, limit: int = 5) -> list[Hit]:
        """The best matches for `query`, best first (only documents sharing a term)."""
        terms = set(tokens(query))
        hits = []
        for i, freq in enumerate(self.freqs):
            score = 0.0
            for t in terms:
                f = freq.get(t)
                if f:
                    norm = 1 - B + B * self.lengths[i] / (self.avg or 1)
                    score += self.idf[t] * f * (K1 + 1) / (f + K1 * norm)
            if score > 0:
                hits.append(Hit(self.keys[i], round(score, 4)))
        hits.sort(key=lambda h: -h.score)
        return hits[:limit]


def article_json(a: KnowledgeArticle, score: float | None = None) -> dict[str, Any]:
    """Public form of an article."""
    out: dict[str, Any] = {
        "id": a.id,
        "title": a.title,
        "body": a.body,
        "tags": a.tags,
        "service": a.service,
        "language": a.language,
        "published": a.published,
        "retired": a.retired,
    }
    if score is not None:
        out["score"] = score
    return out


def item_json(c: ConfigItem, score: float | None = None) -> dict[str, Any]:
    """Public form of a configuration item."""
    out: dict[str, Any] = {
        "id": c.id,
        "name": c.name,
        "type": c.ci_type,
        "service": c.service,
        "owner": c.owner,
        "status": c.status,
        "location": c.location,
        "description": c.description,
    }
    if score is not None:
        out["score"] = score
    return out


class KnowledgeService:
    """Ranked matching of symptom text against the knowledge base and the CMDB.

    The index is built at start (`warm`, which also loads jieba's dictionary, ~1 s) and rebuilt in
    the background when an article or item changes, so a screen pop never waits for either.
    """

    def __init__(self, sessions: SessionMaker, max_age: float = 300.0) -> None:
        self.sessions = sessions
        self.max_age = max_age
        self._index: Bm25Index | None = None
        self._built = 0.0
        self._articles: dict[int, KnowledgeArticle] = {}
        self._items: dict[int, ConfigItem] = {}
        self._rebuild: asyncio.Task[None] | None = None

    async def warm(self) -> None:
        """Load the segmenter's dictionary and build the index."""
        await asyncio.to_thread(jieba.initialize)
        await self._build()

    def invalidate(self) -> None:
        """An article or item changed: rebuild now, in the background."""
        self._schedule()

    def _schedule(self) -> None:
        if self._rebuild is None or self._rebuild.done():
            self._rebuild = asyncio.create_task(self._build())
        else:  # a rebuild is running; build once more after it
            previous = self._rebuild

            async def again() -> None:
                with contextlib.suppress(Exception):
                    await previous
                await self._build()

            self._rebuild = asyncio.create_task(again())

    async def _build(self) -> None:
        async with self.sessions() as s:
            articles = {a.id: a for a in (await s.scalars(select(KnowledgeArticle))).all()}
            items = {c.id: c for c in (await s.scalars(select(ConfigItem))).all()}
        # Retired articles and items stay for the record but are never matched again.
        docs = [
            (f"kb:{a.id}", f"{a.title} {a.title} {a.tags} {a.service} {a.body}")
            for a in articles.values()
            if not a.retired
        ]
        docs += [
            (f"ci:{c.id}", f"{c.name} {c.name} {c.service} {c.ci_type} {c.description}")
            for c in items.values()
            if c.status != RETIRED
        ]
        index = await asyncio.to_thread(Bm25Index, docs)
        self._articles, self._items, self._index = articles, items, index
        self._built = time.monotonic()

    async def _ensure(self, fresh: bool) -> Bm25Index:
        if self._index is None:
            await self._build()
        elif time.monotonic() - self._built > self.max_age:
            self._schedule()  # edits made behind the API's back (another server, SQL)
        if fresh and self._rebuild is not None and not self._rebuild.done():
            await asyncio.shield(self._rebuild)
        assert self._index is not None
        return self._index

    async def close(self) -> None:
        """Stop a rebuild in flight."""
        if self._rebuild is not None:
            self._rebuild.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._rebuild

    async def match(
        self, text: str, limit: int = 5, published_only: bool = False, *, fresh: bool = True
    ) -> dict[str, Any]:
        """{"knowledge": [...], "cmdb": [...]} ranked by relevance to `text`; `fresh=False` (the
        screen pop) never waits for a rebuild in progress."""
        index = await self._ensure(fresh)
        kb: list[dict[str, Any]] = []
        ci: list[dict[str, Any]] = []
        for hit in index.search(text, limit=limit * 4):
            kind, _, raw = hit.key.partition(":")
            if kind == "kb" and len(kb) < limit:
                a = self._articles[int(raw)]
                if a.published or not published_only:
                    kb.append(article_json(a, hit.score))
            elif kind == "ci" and len(ci) < limit and not published_only:
                ci.append(item_json(self._items[int(raw)], hit.score))
        return {"knowledge": kb, "cmdb": ci}
