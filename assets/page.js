() => {
  // Text is laid out in its own direction: Arabic or Hebrew typed in any box, or shown in a result, reads right to
  // left (dir="auto": the first strong character decides), every other text as before.
  const SELECTOR = "textarea, input[type=text], input:not([type]), .prose p, .prose li, td, .probe-text";
  // (Gradio writes dir="ltr" on its text boxes: that fixed direction is the one replaced)
  const auto = (el) => { if (el.dir !== "rtl" && el.dir !== "auto") el.setAttribute("dir", "auto"); };
  const mark = (root) => root.querySelectorAll?.(SELECTOR).forEach(auto);
  const opened = () => {  // the demo banner's details open where there is room for them
    const d = document.querySelector("#demo-banner details");
    if (d && !d.dataset.seen) { d.dataset.seen = "1"; d.open = window.innerWidth > 640; }
  };
  mark(document);
  opened();
  new MutationObserver((changes) => changes.forEach((c) => c.addedNodes.forEach((n) => {
    if (n.nodeType === 1) { if (n.matches(SELECTOR)) auto(n); mark(n); opened(); }
  }))).observe(document.body, { childList: true, subtree: true });
}
