// Progressive enhancement only: every page works without this file (copy by selecting the text).
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied ✓";
      } catch {
        button.textContent = "Copy failed: select the text";
      }
    });
  }
});

// Live regions (`data-live` with an id): while one shows a pending or started attempt
// (`data-pending`), it is re-read from the page itself every few seconds, until none is left.
const LIVE_POLL_MS = 3000;
async function refreshLiveRegions() {
  const regions = [...document.querySelectorAll("[data-live][id]")].filter(
    (region) => region.querySelector("[data-pending]") || region.hasAttribute("data-pending"),
  );
  if (regions.length === 0) return;
  try {
    const response = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store" });
    if (response.ok) {
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of regions) {
        const fresh = page.getElementById(region.id);
        // Unchanged regions stay as they are: no flicker, and a link being clicked stays put.
        if (fresh && fresh.outerHTML !== region.outerHTML) region.replaceWith(document.importNode(fresh, true));
      }
    }
  } catch {
    // Offline for a moment: try again at the next tick.
  }
  window.setTimeout(refreshLiveRegions, LIVE_POLL_MS);
}
document.addEventListener("DOMContentLoaded", () => window.setTimeout(refreshLiveRegions, LIVE_POLL_MS));
