// The program tree of one seidr run: nodes coloured by validation score, a strip of pass/fail per
// test, the solution path marked; a click shows the program's code, explanation, the failing test
// the LLM was shown, and the diff against its parent. Plain DOM, no dependencies.
// Code, outputs, explanations and names come from programs, models and datasets: they go on the
// page only as text (textContent, text nodes), never as markup, so none can add an element or run.
(function () {
  const data = JSON.parse(document.getElementById("seidr-data").textContent);
  const byId = new Map(data.nodes.map((n) => [n.id, n]));
  const children = new Map();
  const roots = [];
  for (const n of data.nodes) {
    if (n.parent === null || !byId.has(n.parent)) roots.push(n);
    else (children.get(n.parent) || children.set(n.parent, []).get(n.parent)).push(n);
  }
  const onPath = new Set(data.solutionPath);

  // An element with a class and children; a string child becomes a text node.
  function el(tag, className, ...kids) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const kid of kids) {
      if (kid === null || kid === undefined || kid === false) continue;
      node.append(kid instanceof Node ? kid : String(kid));
    }
    return node;
  }
  const num = (value, digits) => (typeof value === "number" ? value.toFixed(digits) : "n/a");
  const colour = (score) => `hsl(${Math.round(Number(score) * 120) || 0}, 65%, ${score === 1 ? 38 : 45}%)`;

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
  // The code as text nodes, with spans (holding text nodes) around comments, strings, numbers, keywords.
  function highlight(code, language) {
    const words = new Set((KEYWORDS[language] || KEYWORDS.python).split(" "));
    const comment = language === "cpp" ? "\\/\\/[^\\n]*|\\/\\*[\\s\\S]*?\\*\\/" : "#[^\\n]*";
    const token = new RegExp(`(${comment})|("(?:\\\\.|[^"\\\\])*"|'(?:\\\\.|[^'\\\\])*')|\\b(\\d+(?:\\.\\d+)?)\\b|\\b([A-Za-z_]\\w*)\\b`, "g");
    const out = document.createDocumentFragment();
    let last = 0, m;
    while ((m = token.exec(code)) !== null) {
      out.append(code.slice(last, m.index));
      if (m[1]) out.append(el("span", "com", m[1]));
      else if (m[2]) out.append(el("span", "str", m[2]));
      else if (m[3]) out.append(el("span", "num", m[3]));
      else out.append(words.has(m[4]) ? el("span", "kw", m[4]) : m[4]);
      last = token.lastIndex;
    }
    out.append(code.slice(last));
    return out;
  }

  function row(n) {
    const kids = children.get(n.id) || [];
    const div = el("div", "node" + (onPath.has(n.id) ? " on-path" : ""));
    div.dataset.id = n.id;
    div.dataset.kind = n.kind;
    const score = el("span", "score", num(n.score, 3));
    score.style.background = colour(n.score);
    const tests = el("span", "strip");
    tests.style.background = strip(n.passed);
    div.append(el("span", "toggle", kids.length ? "▾" : ""), score, tests, el("span", "", `#${n.id} ${n.kind}`),
      el("span", "meta", `gen ${n.generation} · ${n.tokens} tokens${n.issue ? " · " + n.issue : ""}` +
        `${kids.length ? " · " + kids.length + " children" : ""}`));
    const li = el("li", "", div);
    if (kids.length) {
      const ul = el("ul", "");
      for (const k of kids) ul.append(row(k));
      li.append(ul);
    }
    return li;
  }

  function shownTest(test) {
    if (!test) return [];
    const parts = [];
    if (test.input !== undefined) parts.push(el("h3", "", `Failing test shown to the LLM (test ${test.test})`), el("pre", "", test.input));
    if (test.expected) parts.push(el("h3", "", "Expected"), el("pre", "", test.expected));
    if (test.actual) parts.push(el("h3", "", "Actual"), el("pre", "", test.actual));
    if (test.error) parts.push(el("h3", "", "Error"), el("pre", "", test.error));
    return parts;
  }

  function diff(lines) {
    if (!lines) return [];
    const heading = el("h3", "", "Diff against its parent");
    if (!lines.length) return [heading, el("p", "hint", "identical to its parent")];
    const body = el("pre", "diff");
    for (const [k, t] of lines) {
      if (k === "+") body.append(el("span", "add", "+" + t));
      else if (k === "-") body.append(el("span", "del", "-" + t));
      else if (k === "@") body.append(el("span", "hunk", t));
      else body.append(` ${t}\n`);
    }
    return [heading, body];
  }

  function show(id) {
    const n = byId.get(id);
    document.querySelectorAll(".node.selected").forEach((e) => e.classList.remove("selected"));
    const selected = [...document.querySelectorAll(".node")].find((e) => e.dataset.id === String(id));
    if (selected) selected.classList.add("selected");
    const passed = n.passed.filter(Boolean).length;
    const pane = document.getElementById("detail-pane");
    pane.replaceChildren(
      el("h2", "", `Program #${n.id} · ${n.kind}${n.parent !== null ? ` of #${n.parent}` : ""}` +
        `${onPath.has(n.id) ? " · on the solution path" : ""}`),
      el("div", "meta", `score ${num(n.score, 3)} · ${passed}/${n.passed.length} tests pass · generation ` +
        `${n.generation} · ${n.tokens} tokens`),
      ...(n.explanation ? [el("h3", "", "Explanation it was repaired from"), el("div", "explanation", n.explanation)] : []),
      ...shownTest(n.shownTest),
      el("h3", "", "Code"), el("pre", "code", highlight(String(n.code ?? ""), data.language)),
      ...diff(n.diff));
  }

  document.getElementById("title").textContent = data.title;
  const r = data.result;
  const summary = document.getElementById("summary");
  if (Object.keys(r).length) {
    for (const [k, v] of [["solved", r.solved ? "yes" : "no"], ["validation score", num(r.val_score, 3)],
      ["test pass rate", num(r.test_pass_rate, 3)], ["programs", r.programs], ["LLM calls", r.llm_calls],
      ["tokens", (r.prompt_tokens || 0) + (r.completion_tokens || 0)], ["model", r.model], ["split", r.split]]) {
      summary.append(el("span", "", el("b", "", k), " ", v ?? ""));
    }
  } else {
    summary.append(el("span", "", "unfinished run: no result.json yet"));
  }
  const tree = document.getElementById("tree");
  const fragment = document.createDocumentFragment();
  for (const n of roots) fragment.append(row(n));
  tree.append(fragment);
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
