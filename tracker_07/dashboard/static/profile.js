/* Tracker's profile page: click an icicle frame to zoom into it in place and list its callers
   and callees beside the graph (from the dashboard's JSON), and search frames by name or file.
   Without this script every frame is a link to the same page with the function's tables. */
(function () {
  "use strict";
  var svg = document.getElementById("flame-graph");
  var panel = document.getElementById("function-panel");
  if (!svg || !panel) {
    return;
  }
  var width = parseFloat(svg.getAttribute("data-width"));
  var charWidth = parseFloat(svg.getAttribute("data-char-width"));
  var frames = Array.prototype.slice.call(svg.querySelectorAll(".frame"));
  var byNode = {};
  var root = null;
  var resetButton = document.getElementById("zoom-reset");
  var search = document.getElementById("flame-search");
  var searchResult = document.getElementById("search-result");

  frames.forEach(function (frame) {
    var rect = frame.querySelector("rect");
    frame.trackerX = parseFloat(rect.getAttribute("x"));
    frame.trackerWidth = parseFloat(rect.getAttribute("width"));
    byNode[frame.getAttribute("data-node")] = frame;
    if (frame.classList.contains("root")) {
      root = frame;
    }
  });

  function parentOf(frame) {
    return byNode[frame.getAttribute("data-parent")] || null;
  }

  /* True when `frame` is `ancestor` or drawn below it. */
  function isWithin(frame, ancestor) {
    for (var node = frame; node; node = parentOf(node)) {
      if (node === ancestor) {
        return true;
      }
    }
    return false;
  }

  /* The same fitting as the server's: name, ms and percent, else the name cut with an ellipsis. */
  function fittingText(frame, frameWidth) {
    var name = frame.getAttribute("data-name");
    var chars = Math.floor((frameWidth - 6) / charWidth);
    var full = name + " " + frame.getAttribute("data-ms") + " ms " + frame.getAttribute("data-pct");
    if (full.length <= chars) {
      return full;
    }
    if (chars < 3) {
      return "";
    }
    return name.length <= chars ? name : name.slice(0, chars - 1) + "\u2026";
  }

  function place(frame, x, frameWidth) {
    var rect = frame.querySelector("rect");
    var text = frame.querySelector("text");
    rect.setAttribute("x", x.toFixed(2));
    rect.setAttribute("width", frameWidth.toFixed(2));
    if (text) {
      text.setAttribute("x", (x + (frame === root ? 4 : 3)).toFixed(2));
      text.textContent = fittingText(frame, frameWidth);
    }
  }

  /* Draw `target` across the whole width, its callees scaled with it, its callers above it
     at full width, and hide everything else. */
  function zoom(target) {
    var scale = width / target.trackerWidth;
    frames.forEach(function (frame) {
      var below = isWithin(frame, target);
      var above = !below && isWithin(target, frame);
      frame.classList.toggle("zoomed-out", !below && !above);
      if (above) {
        place(frame, 0, width);
      } else if (below) {
        place(frame, (frame.trackerX - target.trackerX) * scale, frame.trackerWidth * scale);
      }
    });
    svg.setAttribute("data-zoomed", target.getAttribute("data-node"));
    if (resetButton) {
      resetButton.hidden = target === root;
    }
  }

  function element(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    if (className) {
      node.className = className;
    }
    return node;
  }

  function functionLink(row) {
    var url = new URL(window.location.href);
    url.searchParams.set("fn", row.id);
    url.hash = "flame";
    var fragment = document.createDocumentFragment();
    var link = element("a", row.name);
    link.href = url.toString();
    link.title = row.full || row.label;
    link.setAttribute("data-fn", row.id);
    fragment.appendChild(link);
    if (row.short) {
      fragment.appendChild(document.createTextNode(" "));
      fragment.appendChild(element("span", row.short, "loc"));
    }
    return fragment;
  }

  function edgeTable(id, rows, sampled) {
    var table = element("table", null, "data edges");
    table.id = id;
    var head = table.createTHead().insertRow();
    ["calls", "ms", "%", "function"].forEach(function (title) {
      head.appendChild(element("th", title));
    });
    var body = table.createTBody();
    if (!rows.length) {
      var empty = body.insertRow().insertCell();
      empty.colSpan = 4;
      empty.className = "empty";
      empty.textContent = "none";
    }
    rows.forEach(function (row) {
      var line = body.insertRow();
      line.className = "kind-" + row.kind;
      [sampled ? "\u2014" : row.ncalls, row.cum_ms, row.cum_pct].forEach(function (value) {
        line.insertCell().appendChild(element("span", value)).parentNode.className = "num";
      });
      var cell = line.insertCell();
      cell.className = "label";
      cell.appendChild(functionLink(row));
    });
    return table;
  }

  function showFunction(data) {
    var sampled = panel.getAttribute("data-sampled") === "true";
    var fn = data["function"];
    panel.textContent = "";
    var title = element("h3");
    title.id = "selected-name";
    title.appendChild(functionLink(fn));
    panel.appendChild(title);
    var label = element("p", null, "hint");
    label.appendChild(element("code", fn.label)).id = "selected-function";
    panel.appendChild(label);
    var facts = fn.own_ms + " ms itself (" + fn.own_pct + "), " + fn.cum_ms +
        " ms with callees (" + fn.cum_pct + ")" + (sampled ? "" : ", " + fn.ncalls + " call(s)");
    panel.appendChild(element("p", facts, "fn-facts"));
    panel.appendChild(element("h4", "Called by"));
    panel.appendChild(edgeTable("callers", data.callers, sampled));
    panel.appendChild(element("h4", "Calls"));
    panel.appendChild(edgeTable("callees", data.callees, sampled));
  }

  function showMessage(text, href) {
    panel.textContent = "";
    var message = element("p", text + " ", "hint");
    if (href) {
      var link = element("a", "Open it as a page");
      link.href = href;
      message.appendChild(link);
    }
    panel.appendChild(message);
  }

  function select(frame) {
    frames.forEach(function (other) {
      other.classList.toggle("selected", other === frame);
    });
    var api = panel.getAttribute("data-api");
    var href = frame.getAttribute("href");
    if (!api) {
      showMessage(frame.getAttribute("data-label") + ".", href);
      return;
    }
    panel.setAttribute("aria-busy", "true");
    fetch(api.replace("FUNC_ID", frame.getAttribute("data-fn")), {credentials: "same-origin"})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(showFunction)
      .catch(function (error) {
        showMessage("Could not load its callers and callees (" + error.message + ").", href);
      })
      .then(function () {
        panel.removeAttribute("aria-busy");
      });
  }

  svg.addEventListener("click", function (event) {
    var frame = event.target.closest(".frame");
    if (!frame || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) {
      return;
    }
    event.preventDefault();
    zoom(frame);
    if (frame !== root) {
      select(frame);
    }
  });

  if (resetButton && root) {
    resetButton.addEventListener("click", function () {
      zoom(root);
    });
  }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && root && event.target !== search) {
      zoom(root);
    }
  });

  /* Highlight the frames whose name, file or label contains the search text, dim the rest,
     and say how much of the time the matches hold (nested matches counted once). */
  function highlight() {
    var needle = search.value.trim().toLowerCase();
    var matched = [];
    frames.forEach(function (frame) {
      var haystack = [frame.getAttribute("data-name"), frame.getAttribute("data-file"),
                      frame.getAttribute("data-label")].join(" ").toLowerCase();
      var match = needle !== "" && frame !== root && haystack.indexOf(needle) !== -1;
      frame.classList.toggle("match", match);
      frame.classList.toggle("dim", needle !== "" && !match);
      if (match) {
        matched.push(frame);
      }
    });
    if (!needle) {
      searchResult.hidden = true;
      return;
    }
    var covered = matched.filter(function (frame) {
      for (var node = parentOf(frame); node; node = parentOf(node)) {
        if (matched.indexOf(node) !== -1) {
          return false;
        }
      }
      return true;
    }).reduce(function (sum, frame) {
      return sum + frame.trackerWidth;
    }, 0);
    var percent = root && root.trackerWidth ? covered / root.trackerWidth * 100 : 0;
    searchResult.textContent = matched.length + " frame(s) match, " +
        (percent < 10 ? percent.toFixed(1) : percent.toFixed(0)) + "% of the time";
    searchResult.hidden = false;
  }

  if (search) {
    search.parentNode.hidden = false;
    search.addEventListener("input", highlight);
  }
})();
