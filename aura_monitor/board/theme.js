// Loaded before the stylesheet applies, so a chosen theme never flashes the other one first.
(() => {
  let theme = "auto";
  try {
    theme = localStorage.getItem("aura-monitor.theme") || "auto";
  } catch {
    // Storage can be disabled; the system preference still applies.
  }
  document.documentElement.dataset.theme = ["light", "dark"].includes(theme) ? theme : "auto";
})();
