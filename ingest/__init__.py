"""finsentry.ingest: crawlers that turn configured sources into `Document`s on the raw topic.

Pipeline per run: `Source.fetch` (registry.py: rss, json, html, file) through the polite
`http.Fetcher` -> `normalise` (clean text, language, UTC time, ticker relevance) ->
`dedup.NoveltyIndex` (exact repeats dropped, near-duplicates linked with a decayed novelty) ->
SQLite outbox (state.py) -> Kafka (producer.py). Metrics per source go to
`<state_dir>/metrics.json` (see `finsentry ingest status`).

Adding a feed is a config entry; adding a kind of source is one module + one registry line::

    [ingest]
    user_agent = "AcmeBank Research finsentry/0.1 (markets-data@acmebank.example)"
    allow_networks = []            # e.g. ["10.20.0.0/16"] for an internal news server

    [ingest.aliases]
    AAPL = ["Apple", "Apple Inc.", "0000320193"]   # names and SEC CIK
    "600519.SS" = ["茅台"]     # plus the shipped CSI 300 short names (ingest/data/)

    [[ingest.sources]]
    kind = "rss"
    name = "edgar-8k"
    url = "https://www.sec.gov/cgi-bin/browse-edgar?action=getcurrent&type=8-K&output=atom"
    edgar = true
    interval_s = 600

    [[ingest.sources]]
    kind = "json"
    name = "reddit-stocks"
    url = "https://www.reddit.com/r/stocks/new.json"
    params = { limit = "100" }
    items_path = "data.children"
    item_path = "data"
    title_field = "title"
    text_field = "selftext"
    url_field = "permalink"
    url_base = "https://www.reddit.com"
    time_field = "created_utc"
    time_format = "epoch"
    cursor_path = "data.after"
    cursor_param = "after"

    [[ingest.sources]]
    kind = "html"
    name = "sina-roll"
    url = "https://finance.sina.com.cn/roll/"
    timezone = "Asia/Shanghai"
    item_selector = "ul.list_009 > li"
    time_selector = "span"
    time_format = "(%m月%d日 %H:%M)"
    article_body_selector = "#artibody"

    [[ingest.sources]]             # article pages crawled directly; trafilatura extracts them
    kind = "html"
    name = "portal-articles"
    mode = "article"
    url = "https://finance.example.cn/stock/2019-09-26/doc-iicezzrq8657.shtml"
    timezone = "Asia/Shanghai"
    boilerplate = ['^免责声明：.*$', '^责任编辑：.*$']
"""
