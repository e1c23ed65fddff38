// The program tree of one seidr run: nodes coloured by validation score, a strip of pass/fail per
// test, the solution path marked; a click shows the program's code, explanation, the failing test
// the LLM was shown, and the diff against its parent. Plain DOM, no dependencies.
(function () {
  const data = SEIDR;
  const byId = new Map(data.nodes.map((n) => [n.id, n]));
  const children = new Map();
  const roots = [];
  for (const n of data.nodes) {
    if (n.parent === null || !byId.has(n.parent)) roots.push(n);
    else (children.get(n.parent) || children.set(n.parent, []).get(n.parent)).push(n);
  }
  const onPath = new Set(data.solutionPath);

  const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  const colour = (score) => `hsl(${Math.round(score * 120)}, 65%, ${score === 1 ? 38 : 45}%)`;

  function strip(passed) {
    if (!passed.length) return "#ccc";
    const w = 100 / passed.length;
    const stops = passed.map((p, i) => `${p ? "#2da44e" : "#cf222e"} ${(i * w).toFixed(3)}% ${((i + 1) * w).toFixed(3)}%`);
    return `linear-gradient(to right, ${stops.join(", ")})`;
  }

  const KEYWORDS = {
    python: "and as assert async await break class continue def del elif else except False finally for from global if import in is lambda None nonlocal not or pass raise return True try while with yield",
    cpp: "auto bool break case char class const continue default delete do double else enum false float for if include int long namespace new nullptr private public return short signed size_t sizeof static std string struct switch template this true typedef typename unsigned using vector void while",
  };
  function highlight(code, language) {
    const words = new Set((KEYWORDS[language] || KEYWORDS.python).split(" "));
    const comment = language === "cpp" ? "\\/\\/[^\\n]*|\\/\\*[\\s\\S]*?\\*\\/" : "#[^\\n]*";
    const token = new RegExp(`(${comment})|("(?:\\\\.|[^"\\\\])*"|'(?:\\\\.|[^'\\\\])*')|\\b(\\d+(?:\\.\\d+)?)\\b|\\b([A-Za-z_]\\w*)\\b`, "g");
    let out = "", last = 0, m;
    while ((m = token.exec(code)) !== null) {
      out += esc(code.slice(last, m.index));
      if (m[1]) out += `<span class="com">${esc(m[1])}</span>`;
      else if (m[2]) out += `<span class="str">${esc(m[2])}</span>`;
      else if (m[3]) out += `<span class="num">${esc(m[3])}</span>`;
      else out += words.has(m[4]) ? `<span class="kw">${esc(m[4])}</span>` : esc(m[4]);
      last = token.lastIndex;
    }
    return out + esc(code.slice(last));
  }

  function row(n) {
    const li = document.createElement("li");
    const kids = children.get(n.id) || [];
    const div = document.createElement("div");
    div.className = "node" + (onPath.has(n.id) ? " on-path" : "");
    div.dataset.id = n.id;
    div.dataset.kind = n.kind;
    div.innerHTML =
      `<span class="toggle">${kids.length ? "▾" : ""}</span>` +
      `<span class="score" style="background:${colour(n.score)}">${n.score.toFixed(3)}</span>` +
      `<span class="strip" style="background:${strip(n.passed)}"></span>` +
      `<span>#${n.id} ${n.kind}</span><span class="meta">gen ${n.generation} · ${n.tokens} tokens` +
      `${n.issue ? " · " + esc(n.issue) : ""}${kids.length ? " · " + kids.length + " children" : ""}</span>`;
    li.appendChild(div);
    if (kids.length) {
      const ul = document.createElement("ul");
      for (const k of kids) ul.appendChild(row(k));
      li.appendChild(ul);
    }
    return li;
  }

  function shownTest(test) {
    if (!test) return "";
    const parts = [];
    if (test.input !== undefined) parts.push(`<h3>Failing test shown to the LLM (test ${test.test})</h3><pre>${esc(test.input)}</pre>`);
    if (test.expected) parts.push(`<h3>Expected</h3><pre>${esc(test.expected)}</pre>`);
    if (test.actual) parts.push(`<h3>Actual</h3><pre>${esc(test.actual)}</pre>`);
    if (test.error) parts.push(`<h3>Error</h3><pre>${esc(test.error)}</pre>`);
    return parts.join("");
  }

  function diff(lines) {
    if (!lines) return "";
    if (!lines.length) return "<h3>Diff against its parent</h3><p class=\"hint\">identical to its parent</p>";
    const body = lines.map(([k, t]) => k === "+" ? `<span class="add">+${esc(t)}</span>` :
      k === "-" ? `<span class="del">-${esc(t)}</span>` : k === "@" ? `<span class="hunk">${esc(t)}</span>` : ` ${esc(t)}\n`)
      .join("");
    return `<h3>Diff against its parent</h3><pre class="diff">${body}</pre>`;
  }

  function show(id) {
    const n = byId.get(id);
    document.querySelectorAll(".node.selected").forEach((e) => e.classList.remove("selected"));
    const el = document.querySelector(`.node[data-id="${id}"]`);
    if (el) el.classList.add("selected");
    const passed = n.passed.filter(Boolean).length;
    document.getElementById("detail-pane").innerHTML =
      `<h2>Program #${n.id} · ${n.kind}${n.parent !== null ? ` of #${n.parent}` : ""}${onPath.has(n.id) ? " · on the solution path" : ""}</h2>` +
      `<div class="meta">score ${n.score.toFixed(3)} · ${passed}/${n.passed.length} tests pass · generation ${n.generation} · ${n.tokens} tokens</div>` +
      (n.explanation ? `<h3>Explanation it was repaired from</h3><div class="explanation">${esc(n.explanation)}</div>` : "") +
      shownTest(n.shownTest) +
      `<h3>Code</h3><pre class="code">${highlight(n.code, data.language)}</pre>` + diff(n.diff);
  }

  document.getElementById("title").textContent = data.title;
  const r = data.result;
  document.getElementById("summary").innerHTML = Object.keys(r).length ?
    [["solved", r.solved ? "yes" : "no"], ["validation score", r.val_score?.toFixed(3)], ["test pass rate", r.test_pass_rate?.toFixed?.(3) ?? "n/a"],
     ["programs", r.programs], ["LLM calls", r.llm_calls], ["tokens", (r.prompt_tokens || 0) + (r.completion_tokens || 0)],
     ["model", r.model], ["split", r.split]].map(([k, v]) => `<span><b>${esc(k)}</b> ${esc(v)}</span>`).join("") :
    "<span>unfinished run: no result.json yet</span>";
  const tree = document.getElementById("tree");
  const fragment = document.createDocumentFragment();
  for (const n of roots) fragment.appendChild(row(n));
  tree.appendChild(fragment);
  tree.addEventListener("click", (event) => {
    const node = event.target.closest(".node");
    if (!node) return;
    if (event.target.classList.contains("toggle") && node.parentElement.querySelector("ul")) {
      node.parentElement.classList.toggle("collapsed");
      event.target.textContent = node.parentElement.classList.contains("collapsed") ? "▸" : "▾";
      return;
    }
    show(Number(node.dataset.id));
  });
  if (data.best !== null && byId.has(data.best)) show(data.best);
})();
