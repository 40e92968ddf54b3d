"""SEC EDGAR Atom feeds: the filer of every entry, insider filings under their issuer.

Two feed shapes: the "current" feed (titles 'FORM - Company (CIK) (Filer|Issuer|Reporting)')
and a company's own feed (`<company-info>` with CIK and conformed name; titles carry only the
form). A Form 3/4/5 appears in the current feed twice, once under the issuer and once under the
insider ('(Reporting)'): it is one filing, about the issuer, so the pair becomes one item filed
under the issuer with the insider in `reporting_owners` (likewise SC 13D/G: '(Subject)' and
'(Filed by)'). The summary's 'Filed: … AccNo: … Size:
…' line is metadata, not story text: it would make every filing look like every other one.
"""

from __future__ import annotations

import re
from typing import Any

from finsentry.ingest.base import Item
from finsentry.ingest.parsing import clean_inline

_TITLE = re.compile(
    r"^(?P<form>\S.*?)\s+-\s+(?P<company>.+?)\s+\((?P<cik>\d{10})\)(?:\s+\((?P<role>[^)]+)\))?")
_FORM_ONLY = re.compile(r"^(?P<form>\S+)\s+-\s+(?P<desc>.*)$")
_ACCESSION = re.compile(r"accession-number=(\d{10}-\d{2}-\d{6})")
# 'Filed: 2024-05-02 AccNo: 0000320193-24-000069 Size: 1 MB' (bold tags around the labels)
BOILERPLATE = re.compile(
    r"(?:<b>)?\s*Filed:\s*(?:</b>)?\s*(?P<filed>\d{4}-\d{2}-\d{2})\s*"
    r"(?:<b>)?\s*AccNo:\s*(?:</b>)?\s*(?P<acc>\d{10}-\d{2}-\d{6})\s*"
    r"(?:<b>)?\s*Size:\s*(?:</b>)?\s*(?P<size>\d+(?:\.\d+)?\s*[KMG]?B)\s*(?:<br\s*/?>)?",
    re.IGNORECASE)
# roles of the party that files about another company: an insider on Forms 3/4/5
# ('(Reporting)' next to '(Issuer)'), a holder on SC 13D/G ('(Filed by)' next to '(Subject)')
FILED_BY_ROLES = frozenset({"reporting", "filed by"})


def edgar_item_metadata(item: Item, guid: str, tags: list[str], filing: dict[str, str],
                        company: dict[str, str]) -> None:
    """Form, company, CIK, accession number and filing date on `item`; boilerplate removed."""
    meta: dict[str, Any] = {"filing": True}
    match = _TITLE.match(item.title)
    if match:
        meta.update(form_type=match["form"], company=match["company"], cik=match["cik"])
        if match["role"]:
            meta["filer_role"] = match["role"].lower()
    elif company.get("cik"):
        # a company feed: the feed names the company, the title only the form
        form = filing.get("filing-type") or (tags[0] if tags else None)
        name = company.get("conformed-name", "")
        meta.update(form_type=form, company=name, cik=company["cik"].zfill(10))
        desc = filing.get("form-name") or (
            m["desc"] if (m := _FORM_ONLY.match(item.title)) else "")
        item.title = clean_inline(f"{form} - {name} ({meta['cik']}): {desc}".rstrip(": "))
    elif tags:
        meta["form_type"] = tags[0]
    found = BOILERPLATE.search(item.body)
    if found:
        meta.update(filed=found["filed"], accession_number=found["acc"], size=found["size"])
        item.body = (item.body[:found.start()] + item.body[found.end():]).strip()
    acc = _ACCESSION.search(guid) or _ACCESSION.search(filing.get("accession-number", ""))
    if acc:
        meta["accession_number"] = acc.group(1)
    elif filing.get("accession-number"):
        meta["accession_number"] = filing["accession-number"]
    if filing.get("filing-date"):
        meta.setdefault("filed", filing["filing-date"])
    if filing.get("items-desc") and not item.body:
        item.body = filing["items-desc"]
    if meta.get("filer_role") in FILED_BY_ROLES:
        # until its issuer entry is found, the insider is not the company this is about
        meta["reporting_owner"] = meta.pop("company", None)
        meta["reporting_cik"] = meta.pop("cik", None)
    item.metadata.update(meta)


def merge_insider_entries(items: list[Item]) -> list[Item]:
    """One item per filing: a '(Reporting)'/'(Filed by)' entry joins the issuer or subject
    entry of the same accession number."""
    by_acc: dict[str, Item] = {}
    out: list[Item] = []
    pending: list[Item] = []
    for item in items:
        acc = item.metadata.get("accession_number")
        if item.metadata.get("filer_role") in FILED_BY_ROLES and acc:
            pending.append(item)
            continue
        if acc and acc in by_acc:
            continue  # the same filing listed twice (e.g. two filer roles): keep the first
        if acc:
            by_acc[acc] = item
        out.append(item)
    for insider in pending:
        issuer = by_acc.get(insider.metadata["accession_number"])
        if issuer is None:
            out.append(insider)  # its issuer entry is not in this page: keep it, unattributed
            continue
        owners = issuer.metadata.setdefault("reporting_owners", [])
        owners.append(insider.metadata.get("reporting_owner"))
        issuer.metadata.setdefault("reporting_ciks", []).append(
            insider.metadata.get("reporting_cik"))
    return out
