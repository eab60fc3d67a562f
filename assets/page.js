() => {
  // Text boxes take the direction of what is in them: Arabic or Hebrew reads right to left (dir="auto": the first
  // strong character decides). Set when a box gets the focus or an input, and once on the boxes already filled; no
  // watching of the page's changes (a long job's progress redraws it many times a second).
  const BOXES = "textarea, input[type=text], input:not([type])";
  const auto = (el) => {
    if (el?.matches?.(BOXES) && el.dir !== "rtl" && el.dir !== "auto") el.setAttribute("dir", "auto");
  };
  for (const kind of ["focusin", "input"]) document.addEventListener(kind, (e) => auto(e.target), true);
  const settle = (tries) => {  // once the app has drawn: the boxes there, and the demo banner's details opened
    const banner = document.querySelector("#demo-banner details");
    if (!banner && tries > 0) return setTimeout(() => settle(tries - 1), 250);
    if (banner) banner.open = window.innerWidth > 640;  // where there is room for them
    document.querySelectorAll(BOXES).forEach(auto);
  };
  settle(40);
}
