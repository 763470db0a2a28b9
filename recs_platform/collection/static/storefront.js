/* storefront.js, the demo shop's carousel (recs_platform/serving/storefront.py renders the pages).
 *   <section data-recs-carousel data-k="8" data-sku="sku-1">: "Recommended for you" on the page
 *   of sku-1. The session's viewed SKUs are kept in sessionStorage, oldest first, the product on
 *   screen last; GET /recommend?session=...&k=N&session_id=<the tracker's session> answers the
 *   SKUs, GET /shop/cards their cards.
 * The product on screen is never shown (the endpoint excludes the session; this guards it too).
 * Once the row is filled the tracker gets its impression (the anchor product: the one on screen,
 * else the last one viewed; the SKUs shown, best first; the answer's request id, model and
 * variant), and a click on a card tells the tracker its position, so that the product view of the
 * page it opens carries the request id and position (recs.carouselClick).
 * When /recommend fails the row is hidden behind a short notice; the page works without it.
 * Buttons with data-add-to-cart="sku" send recs.addToCart(sku) and count the cart.
 */
(() => {
  "use strict";
  const VIEWED_KEY = "recs_shop_viewed";
  const CART_KEY = "recs_shop_cart";
  const MAX_VIEWED = 50; // the facade takes 200; the model scores far fewer
  const DEFAULT_K = 8;
  const memory = {}; // where sessionStorage is blocked (it then throws on access)

  function load(key) {
    let text;
    try {
      text = sessionStorage.getItem(key);
    } catch (blocked) {
      text = memory[key];
    }
    let value;
    try {
      value = JSON.parse(text || "[]");
    } catch (malformed) { // not written by this script: start the list again
      value = [];
    }
    return Array.isArray(value) ? value.filter((sku) => typeof sku === "string") : [];
  }

  function save(key, values) {
    memory[key] = JSON.stringify(values);
    try {
      sessionStorage.setItem(key, memory[key]);
    } catch (blocked) {
      // kept in memory for this page only
    }
  }

  function viewed(currentSku) {
    const session = load(VIEWED_KEY).filter((sku) => sku !== currentSku);
    if (currentSku) session.push(currentSku);
    const kept = session.slice(-MAX_VIEWED);
    save(VIEWED_KEY, kept);
    return kept;
  }

  function positiveInt(text, fallback) {
    const value = Number.parseInt(text, 10);
    return Number.isInteger(value) && value > 0 ? value : fallback;
  }

  async function getJson(url) {
    const response = await fetch(url, {credentials: "same-origin", cache: "no-store"});
    if (!response.ok) throw new Error(`${url.split("?")[0]} answered ${response.status}`);
    return response.json();
  }

  async function fill(carousel) {
    const currentSku = carousel.dataset.sku || null;
    const k = positiveInt(carousel.dataset.k, DEFAULT_K);
    const session = viewed(currentSku);
    const row = carousel.querySelector("[data-recs-items]");
    const notice = carousel.querySelector("[data-recs-notice]");
    const model = carousel.querySelector("[data-recs-model]");
    if (!session.length) { // nothing viewed yet: the page already shows what is popular
      carousel.hidden = true;
      carousel.dataset.state = "empty";
      return;
    }
    try {
      // The tracker's session picks the variant (recs.js runs first: both scripts are deferred).
      const sessionId = typeof window.recs.sessionId === "function" ? window.recs.sessionId() : "";
      const query = `session=${encodeURIComponent(session.join(","))}&k=${k}` +
        (sessionId ? `&session_id=${encodeURIComponent(sessionId)}` : "");
      const answer = await getJson(`/recommend?${query}`);
      const skus = answer.items
        .filter((sku, at, all) => sku !== currentSku && all.indexOf(sku) === at)
        .slice(0, k);
      const {cards} = await getJson(`/shop/cards?skus=${encodeURIComponent(skus.join(","))}`);
      row.replaceChildren();
      const shown = [];
      for (const card of cards) {
        if (card.sku === currentSku) continue;
        const template = document.createElement("template");
        template.innerHTML = card.html; // rendered and escaped by the shop's server
        shown.push(card.sku);
        template.content.firstElementChild.dataset.position = String(shown.length);
        row.append(template.content);
      }
      const version = answer.model && answer.model.version;
      model.textContent = (version ? `model v${version}` : "") +
        (answer.fallback ? ` · ${answer.fallback}` : "");
      if (typeof answer.request_id === "string") carousel.dataset.requestId = answer.request_id;
      carousel.dataset.state = "ready";
      const anchor = currentSku || session[session.length - 1];
      if (shown.length) window.recs.impression(anchor, shown, answer);
    } catch (error) {
      row.replaceChildren();
      row.hidden = true;
      model.textContent = "";
      notice.textContent = "Recommendations are not available right now.";
      notice.hidden = false;
      carousel.dataset.state = "unavailable";
      console.warn("recommendations:", error);
    }
  }

  function showCart() {
    const count = String(load(CART_KEY).length);
    document.querySelectorAll("[data-cart-count]").forEach((node) => {
      node.textContent = count;
    });
  }

  function carouselClick(event) { // a card opened, here or in a new tab: tell the tracker
    if (event.type === "auxclick" && event.button !== 1) return; // only the middle button opens
    const card = event.target.closest("[data-recs-items] > [data-position]");
    const carousel = card && card.closest("[data-recs-carousel]");
    if (!carousel || !carousel.dataset.requestId || !event.target.closest("a")) return;
    window.recs.carouselClick(card.dataset.sku, carousel.dataset.requestId,
      Number(card.dataset.position));
  }

  document.addEventListener("click", carouselClick);
  document.addEventListener("auxclick", carouselClick);

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-add-to-cart]");
    if (!button || button.disabled) return;
    const sku = button.dataset.addToCart;
    window.recs.addToCart(sku);
    save(CART_KEY, load(CART_KEY).concat([sku]));
    showCart();
    button.textContent = "Added to cart";
    button.disabled = true;
  });

  showCart();
  document.querySelectorAll("[data-recs-carousel]").forEach(fill);
})();
