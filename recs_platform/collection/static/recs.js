/* recs.js, the recs-platform tracker: plain ES2017, no dependencies, no build step.
 *   recs.init({collector: "https://collect.example.com"})  (or <script data-collector="...">)
 *   recs.pageView() productView(sku) addToCart(sku) removeFromCart(sku) purchase([skus])
 * The recommendation carousel (what it showed, what was clicked):
 *   recs.impression(anchorSku, shownSkus, answer): the carousel on the page of anchorSku shows
 *     shownSkus, best first; answer is what GET /recommend answered (request_id, model, variant,
 *     fallback).
 *   recs.carouselClick(sku, requestId, position): the shopper clicked the item at position (1 is
 *     the first) and is on the way to its page; the productView(sku) of that page, within a
 *     minute, carries request_id and position (a short-lived cookie holds them meanwhile).
 *   recs.productView(sku, {request_id, position}): a product view that is the click itself.
 *   recs.sessionId(): the session id the events carry, for GET /recommend's session_id (so a
 *     session meets the same variant throughout); a page must wait for this file to call it.
 * Events (the raw event contract, DESIGN.md) queued in one tick go as one JSON batch with
 * navigator.sendBeacon; without it, or when it refuses, as one pixel each. Calls the stub
 * snippet queued before this file loaded (window.recs.q) are replayed in order.
 */
(() => {
  "use strict";
  const SESSION_MS = 30 * 60 * 1000;
  const CLICK_MS = 60 * 1000; // a carousel click waits this long for its product view
  const MAX_CLICKS = 10; // pending clicks kept (several tabs opened from one carousel)
  const BATCH = 50; // events per beacon: the collector takes 500, a beacon up to 64 KB
  const script = document.currentScript;
  const stub = window.recs;
  if (stub && stub.loaded) return; // included twice

  const config = {collector: null, flushDelay: 0, cookieDomain: null};
  const queue = [];
  const memory = {}; // cookie values, when cookies are blocked
  let scheduled = false;
  let timer = null;

  function uuid() {
    if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    const h = Array.from(b, (x) => (x + 0x100).toString(16).slice(1)).join("");
    return [h.slice(0, 8), h.slice(8, 12), h.slice(12, 16), h.slice(16, 20), h.slice(20)].join("-");
  }

  function getCookie(name) {
    const m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m ? decodeURIComponent(m[1]) : memory[name];
  }

  function setCookie(name, value, maxAgeS) {
    memory[name] = value;
    document.cookie = `${name}=${encodeURIComponent(value)}; path=/; max-age=${maxAgeS}` +
      "; SameSite=Lax" + (config.cookieDomain ? "; domain=" + config.cookieDomain : "") +
      (location.protocol === "https:" ? "; Secure" : "");
  }

  function userId() { // anonymous, first-party; a year after the last visit
    const id = getCookie("recs_uid") || uuid();
    setCookie("recs_uid", id, 365 * 24 * 3600);
    return id;
  }

  function sessionId(now) { // recs_sid = "<id>.<last activity ms>"; new after 30 quiet minutes
    const [id, last] = (getCookie("recs_sid") || "").split(".");
    const current = id && now - Number(last) <= SESSION_MS ? id : uuid();
    setCookie("recs_sid", current + "." + now, SESSION_MS / 1000);
    return current;
  }

  function track(eventType, action, sku, fields) {
    const now = Date.now();
    queue.push(Object.assign({
      event_id: uuid(),
      session_id: sessionId(now),
      user_id: userId(),
      event_type: eventType,
      product_action: action,
      product_sku: sku == null ? null : String(sku),
      url: (location.pathname + location.search).slice(0, 2048),
      client_ts: now,
    }, fields));
    schedule();
  }

  function clickFields(click) {
    return click && click.request_id != null && click.position != null
      ? {request_id: String(click.request_id), position: Number(click.position)}
      : {};
  }

  // recs_click: [[sku, request_id, position, clicked at ms], ...], the clicks awaiting their view.
  function pendingClicks(now) {
    let clicks;
    try {
      clicks = JSON.parse(getCookie("recs_click") || "[]");
    } catch (malformed) {
      clicks = [];
    }
    return (Array.isArray(clicks) ? clicks : [])
      .filter((c) => Array.isArray(c) && c.length === 4 && now - c[3] <= CLICK_MS);
  }

  function savePendingClicks(clicks) {
    setCookie("recs_click", JSON.stringify(clicks.slice(-MAX_CLICKS)), clicks.length ? 60 : 0);
  }

  function carouselClick(sku, requestId, position) {
    const now = Date.now();
    const clicks = pendingClicks(now).filter((c) => c[0] !== String(sku));
    clicks.push([String(sku), String(requestId), Number(position), now]);
    savePendingClicks(clicks);
  }

  function productView(sku, click) {
    let fields = clickFields(click);
    if (!fields.request_id) { // the click that led here, if one did
      const clicks = pendingClicks(Date.now());
      const at = clicks.findIndex((c) => c[0] === String(sku));
      if (at >= 0) {
        fields = clickFields({request_id: clicks[at][1], position: clicks[at][2]});
        clicks.splice(at, 1);
        savePendingClicks(clicks);
      }
    }
    track("event_product", "detail", sku, fields);
  }

  function impression(anchorSku, shownSkus, answer) {
    const model = (answer && answer.model) || {};
    track("impression", null, anchorSku, {
      request_id: answer && answer.request_id != null ? String(answer.request_id) : null,
      shown_skus: [].concat(shownSkus).map(String),
      model_name: model.name == null ? null : String(model.name),
      model_version: model.version == null ? null : String(model.version),
      variant: (answer && answer.variant) || "champion",
      fallback: (answer && answer.fallback) || null,
    });
  }

  function schedule() {
    if (scheduled || !config.collector || !queue.length) return;
    scheduled = true;
    if (config.flushDelay > 0) timer = setTimeout(flush, config.flushDelay);
    else Promise.resolve().then(flush); // the end of this tick
  }

  function pixel(event) { // a list (shown_skus) goes comma-separated
    const fields = Object.keys(event).filter((k) => event[k] != null);
    const query = fields.map((k) => k + "=" + encodeURIComponent([].concat(event[k]).join(",")))
      .join("&");
    new Image().src = config.collector + "/i?" + query;
  }

  function beacon(batch) {
    try { // text/plain: a CORS-safelisted type, so no preflight
      const body = new Blob([JSON.stringify(batch)], {type: "text/plain"});
      return !!navigator.sendBeacon && navigator.sendBeacon(config.collector + "/collect", body);
    } catch (e) {
      return false;
    }
  }

  function flush() {
    scheduled = false;
    clearTimeout(timer);
    while (config.collector && queue.length) {
      const batch = queue.splice(0, BATCH);
      if (!beacon(batch)) batch.forEach(pixel);
    }
  }

  function init(options) {
    Object.assign(config, options);
    if (config.collector) config.collector = String(config.collector).replace(/\/+$/, "");
    schedule();
  }

  const recs = {
    loaded: true,
    init,
    flush,
    pageView: () => track("pageview", null, null),
    productView,
    impression,
    carouselClick,
    sessionId: () => sessionId(Date.now()), // the session the events go to (for /recommend)
    addToCart: (sku) => track("event_product", "add", sku),
    removeFromCart: (sku) => track("event_product", "remove", sku),
    purchase: (skus) => [].concat(skus).forEach((sku) => track("event_product", "purchase", sku)),
  };

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") flush();
  });
  window.addEventListener("pagehide", flush);

  const attribute = script && script.getAttribute("data-collector");
  if (attribute) init({collector: attribute});
  window.recs = recs;
  for (const [method, args] of (stub && Array.isArray(stub.q) ? stub.q : [])) {
    if (typeof recs[method] === "function") recs[method](...(args || []));
  }
})();
