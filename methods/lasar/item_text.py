"""What LASAR's teachers read about an item (methods/lasar/teacher.py; paper Appendix E.2):
its leaf category, brand, category path and area, a short name, whether it has any text at
all, and per history the category diversity of Table 8 and the share of examples with item
text (0.0 on Instruments, which ships no item text)."""

_CATALOGS = {}


def _catalog(recs):
    """What the teachers need of the whole catalog, computed once per catalog: `categories`,
    the attribute names that appear after the first position of some item (Sports puts the
    brand first only where it is known, so a first attribute is a brand only if it is never a
    category elsewhere); `roots`, category names that head every item's path (Beauty's
    'Beauty'), which say nothing about an item. The cache holds the catalog itself, so a key
    (its id) is never reused by another list."""
    key = id(recs)
    if key not in _CATALOGS or _CATALOGS[key][0] is not recs:
        cats = {a for r in recs for a in (r.get("attributes") or [])[1:]}
        heads = []
        for r in recs:
            attrs = r.get("attributes") or []
            path = r.get("categories") or (attrs[1:] if attrs and attrs[0] not in cats
                                           else attrs)
            if path:
                heads.append(path[0])
        roots = {heads[0]} if len(heads) > 1 and len(set(heads)) == 1 else set()
        if len(_CATALOGS) > 8:
            _CATALOGS.clear()
        _CATALOGS[key] = (recs, {"categories": cats, "roots": roots})
    return _CATALOGS[key][1]


def item_category(rec):
    """Leaf category of an item: the last of `categories` (Beauty) or of `attributes` after the
    brand (Sports: [brand, top, ..., leaf]); None when unknown."""
    if rec.get("categories"):
        return rec["categories"][-1]
    attrs = rec.get("attributes") or []
    return attrs[-1] if len(attrs) >= 2 else None


def item_brand(rec, recs=()):
    if rec.get("brand"):
        return rec["brand"]
    attrs = rec.get("attributes") or []
    if len(attrs) >= 2 and attrs[0] not in _catalog(recs)["categories"]:
        return attrs[0]
    return None


def item_path(rec, recs=()):
    """An item's category path, top level first: `categories`, else the attribute names that
    are categories somewhere in the catalog (a brand, and a lone unknown name, left out); the
    catalog's root level (a name that heads every item's path) left out."""
    cat = _catalog(recs)
    if rec.get("categories"):
        path = list(rec["categories"])
    else:
        attrs = list(rec.get("attributes") or [])
        path = [a for a in (attrs[1:] if len(attrs) >= 2 and item_brand(rec, recs) == attrs[0]
                            else attrs) if a in cat["categories"]]
    return [p for p in path if p not in cat["roots"]]


def item_area(rec, recs=()):
    """The broad area of an item, the top of its category path below the catalog's root
    (Sports: 'Hunting & Fishing'; Beauty: 'Skin Care'); None when unknown or when the path
    has one level (the area would be the product type itself)."""
    path = item_path(rec, recs)
    return path[0] if len(path) >= 2 else None


def item_name(rec):
    """A short name: title, else keywords, else the leaf category."""
    name = rec.get("title") or rec.get("keywords") or item_category(rec) or "an item"
    return " ".join(name.split()[:8])


def has_item_text(rec):
    """Whether the teachers have anything to read about an item (title, brand, categories,
    attribute names or keywords); Instruments' items have none."""
    return any(rec.get(k) for k in ("title", "brand", "categories", "attributes", "keywords"))


def item_text_share(histories, recs):
    """Share of examples any of whose history items has item text (0.0 on Instruments)."""
    if not len(histories):
        return 0.0
    return sum(any(has_item_text(recs[i]) for i in h) for h in histories) / len(histories)


def category_diversity(items, recs):
    """Distinct leaf categories in a history (Table 8's 'Cat. Div.')."""
    return len({item_category(recs[i]) for i in items} - {None})
