// Enhancements for the search page; everything works without this file (plain GET and POST forms).
// - search by image as soon as a file is chosen, dropped anywhere on the page, or pasted
// - "More results" appended in place instead of a new page
// - an image opens in a lightbox (arrow keys for the next and previous result) instead of its own page
(() => {
  "use strict";
  document.documentElement.classList.add("js");

  const FILTERS = ["folder", "date_from", "date_to", "format"];

  function ready(fn) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn);
    else fn();
  }

  ready(() => {
    const textForm = document.getElementById("text-search");
    const imageForm = document.getElementById("image-search");
    if (!imageForm) return;
    const fileInput = imageForm.elements.namedItem("image"); // in the search box, via form="image-search"

    // The filters live in the text form; an image search takes their current values.
    function copyFilters(form) {
      form.querySelectorAll("input[data-filter]").forEach((input) => input.remove());
      for (const name of FILTERS) {
        const field = textForm && textForm.elements[name];
        if (field && field.value) {
          const hidden = document.createElement("input");
          hidden.type = "hidden";
          hidden.name = name;
          hidden.value = field.value;
          hidden.dataset.filter = "";
          form.append(hidden);
        }
      }
    }

    function busy() {
      document.body.classList.add("busy");
    }

    // The file input's accept list (content types and file name endings) comes from the server's
    // format registry; a file that matches neither is not sent. A file with no type (some systems
    // give none) goes to the server, which decides.
    const accepted = fileInput.accept.toLowerCase().split(",").map((token) => token.trim()).filter(Boolean);
    function readable(file) {
      const type = (file.type || "").toLowerCase();
      const name = (file.name || "").toLowerCase();
      return accepted.some((token) => (token.startsWith(".") ? name.endsWith(token) : type === token));
    }

    function searchWithFile(file) {
      if (!file) return;
      if (file.type && !readable(file)) {
        notice("That file is not an image this site can read.");
        return;
      }
      const transfer = new DataTransfer();
      transfer.items.add(file);
      fileInput.files = transfer.files;
      copyFilters(imageForm);
      busy();
      imageForm.submit();
    }

    function notice(text) {
      let box = document.querySelector(".js-notice");
      if (!box) {
        box = document.createElement("p");
        box.className = "message error js-notice";
        box.setAttribute("role", "alert");
        imageForm.after(box);
      }
      box.textContent = text;
    }

    fileInput.addEventListener("change", () => searchWithFile(fileInput.files[0]));
    imageForm.addEventListener("submit", () => {
      copyFilters(imageForm);
      busy();
    });
    if (textForm) textForm.addEventListener("submit", busy);

    // Drop anywhere on the page.
    const hasFiles = (event) => event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files");
    let depth = 0;
    window.addEventListener("dragenter", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth += 1;
      document.body.classList.add("dragging");
    });
    window.addEventListener("dragover", (event) => {
      if (hasFiles(event)) event.preventDefault();
    });
    window.addEventListener("dragleave", (event) => {
      if (!hasFiles(event)) return;
      depth -= 1;
      if (depth <= 0) {
        depth = 0;
        document.body.classList.remove("dragging");
      }
    });
    window.addEventListener("drop", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      depth = 0;
      document.body.classList.remove("dragging");
      searchWithFile(event.dataTransfer.files[0]);
    });

    // Paste an image (a screenshot, a copied picture) anywhere but in a text field.
    window.addEventListener("paste", (event) => {
      const files = Array.from((event.clipboardData && event.clipboardData.files) || []);
      const image = files.find((file) => file.type && readable(file));
      if (!image) return;
      event.preventDefault();
      searchWithFile(image);
    });

    // "More results": fetch the next page's fragment and append it.
    async function loadMore(control, url, init) {
      const list = document.getElementById("results");
      if (!list) return false;
      control.classList.add("loading");
      control.setAttribute("aria-busy", "true");
      try {
        const response = await fetch(url, {
          ...init,
          credentials: "same-origin",
          headers: { "X-Partial": "results" },
        });
        if (!response.ok) return false;
        const template = document.createElement("template");
        template.innerHTML = await response.text();
        const items = template.content.querySelectorAll(".results > li");
        const more = template.content.querySelector(".more");
        if (!more) return false;
        const first = items[0];
        items.forEach((item) => list.append(item));
        control.closest(".more").replaceWith(more);
        if (first) first.querySelector("a.open").focus({ preventScroll: true });
        return true;
      } catch {
        return false;
      }
    }

    document.addEventListener("click", async (event) => {
      const link = event.target.closest(".more a.more-button");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      if (!(await loadMore(link, link.href, { method: "GET" }))) window.location.href = link.href;
    });

    document.addEventListener("submit", async (event) => {
      const form = event.target.closest(".more-form");
      if (!form) return;
      event.preventDefault();
      const button = form.querySelector("button");
      if (!(await loadMore(button, form.action, { method: "POST", body: new FormData(form) }))) form.submit();
    });

    // The lightbox.
    const dialog = document.createElement("dialog");
    dialog.className = "lightbox";
    dialog.setAttribute("aria-label", "Image");
    document.body.append(dialog);
    let current = null;

    async function openImage(link) {
      try {
        const response = await fetch(link.href, { credentials: "same-origin", headers: { "X-Partial": "image" } });
        if (!response.ok) throw new Error(String(response.status));
        const html = await response.text();
        dialog.innerHTML =
          '<button type="button" class="close" aria-label="Close">×</button>' +
          '<button type="button" class="step prev" aria-label="Previous image">‹</button>' +
          '<button type="button" class="step next" aria-label="Next image">›</button>' +
          html;
        current = link;
        if (!dialog.open) dialog.showModal();
        dialog.querySelector(".close").focus();
      } catch {
        window.location.href = link.href;
      }
    }

    function step(direction) {
      if (!current) return;
      const links = Array.from(document.querySelectorAll(".results a.open"));
      const next = links[links.indexOf(current) + direction];
      if (next) openImage(next);
    }

    document.addEventListener("click", (event) => {
      const link = event.target.closest(".results a.open");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      openImage(link);
    });
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog || event.target.closest(".close")) dialog.close();
      else if (event.target.closest(".step.prev")) step(-1);
      else if (event.target.closest(".step.next")) step(1);
    });
    dialog.addEventListener("keydown", (event) => {
      if (event.key === "ArrowLeft") step(-1);
      else if (event.key === "ArrowRight") step(1);
    });
    dialog.addEventListener("close", () => {
      if (current) current.focus({ preventScroll: true });
    });

    // Back from the page state after a search-by-image POST shows the page, not a stale spinner.
    window.addEventListener("pageshow", () => document.body.classList.remove("busy"));
  });
})();
