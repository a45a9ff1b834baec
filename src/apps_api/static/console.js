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
