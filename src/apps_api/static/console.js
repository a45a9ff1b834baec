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
  // manual_dialog: the app's page opens in a dialog on this page.
  for (const form of document.querySelectorAll("form[data-dialog]")) {
    const dialog = document.getElementById(form.dataset.dialog);
    const frame = dialog && dialog.querySelector("iframe");
    if (!frame || typeof dialog.showModal !== "function") continue;
    form.target = frame.name;
    form.addEventListener("submit", () => dialog.showModal());
  }
  // The webhook form's channel pickers: a pick fills its row's pattern and shows the scope warning.
  for (const picker of document.querySelectorAll("select.channel-pick")) {
    const target = document.getElementById(picker.dataset.target);
    const warning = document.getElementById(picker.dataset.warning);
    picker.addEventListener("change", () => {
      const option = picker.selectedOptions[0];
      if (!target || !option || !option.value) return;
      target.value = option.value;
      if (warning) {
        const missing = option.dataset.missing;
        warning.hidden = !missing;
        const scope = warning.querySelector("code.scope");
        if (scope && missing) scope.textContent = missing;
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
