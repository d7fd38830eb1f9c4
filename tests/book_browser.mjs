// Opens every page of the built site in headless Chromium and writes what it saw as JSON:
//   node tests/book_browser.mjs SITE_DIR REPORT.json [--chromium PATH] [--jobs N]
//        [--screenshots DIR] [--search TERM]...
// Pages are opened from disk (file://), as a reader of a downloaded copy would, with every
// request that leaves the disk refused and recorded. For each page: MathJax's output and
// errors, raw TeX left in the text, images and their natural sizes, audio players, page
// errors, and axe-core's violations. Then the search page is asked for each --search term.
// tests/test_book.py runs it and checks the report.
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";
import { pathToFileURL, fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? args.splice(at, 2)[1] : fallback;
};
const chromium = option("--chromium", "/usr/bin/chromium");
const screenshots = option("--screenshots", "");
const jobs = Number(option("--jobs", "2"));
const searches = [];
for (let at = args.indexOf("--search"); at >= 0; at = args.indexOf("--search")) {
  searches.push(args.splice(at, 2)[1]);
}
const [siteArg, reportPath] = args;
if (!siteArg || !reportPath) {
  console.error("usage: node tests/book_browser.mjs SITE_DIR REPORT.json " +
    "[--chromium PATH] [--jobs N] [--screenshots DIR] [--search TERM]...");
  process.exit(2);
}
const site = resolve(siteArg);
const axeSource = readFileSync(join(here, "..", "node_modules", "axe-core", "axe.min.js"), "utf8");

function htmlFiles(folder) {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) {
      return entry.name.startsWith("_") ? [] : htmlFiles(path);
    }
    return entry.name.endsWith(".html") ? [path] : [];
  });
}

async function openPage(browser, url, refused) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error.message || error)));
  await page.setRequestInterception(true);
  page.on("request", (request) => {
    const address = request.url();
    if (/^(file|data|blob|about):/.test(address)) {
      request.continue();
    } else {
      refused.push(address);
      request.abort();
    }
  });
  await page.goto(url, { waitUntil: "load", timeout: 60000 });
  return { page, errors };
}

// Waits for MathJax to finish typesetting and every image to load or fail.
async function settle(page) {
  await page.evaluate(async () => {
    const images = [...document.images].map((img) => {
      img.loading = "eager";
      return img.complete ? null : new Promise((done) => {
        img.addEventListener("load", done, { once: true });
        img.addEventListener("error", done, { once: true });
      });
    });
    await Promise.all(images);
    if (window.MathJax && window.MathJax.startup) {
      await window.MathJax.startup.promise;
    }
  });
}

async function inspect(page) {
  return page.evaluate(() => {
    const article = document.querySelector("article") || document.body;
    const images = [...article.querySelectorAll("img")].map((img) => ({
      src: img.getAttribute("src"),
      alt: img.getAttribute("alt"),
      width: img.naturalWidth,
      height: img.naturalHeight,
    }));
    // The prose as read, without code, rendered math and scripts: TeX left here was
    // not typeset.
    const prose = article.cloneNode(true);
    prose.querySelectorAll("pre, code, mjx-container, script, style")
      .forEach((node) => node.remove());
    const text = prose.textContent;
    return {
      title: document.title,
      lang: document.documentElement.lang,
      mathjax_loaded: Boolean(window.MathJax && window.MathJax.startup),
      math_sources: document.querySelectorAll(".math, .math.notranslate").length,
      math_rendered: article.querySelectorAll("mjx-container").length,
      math_errors: article.querySelectorAll("mjx-merror").length,
      raw_tex: text.match(/\$\$|\\[[(]|\\(frac|sum|mathbf|mathrm|left|right|begin)\b/g) || [],
      images,
      audio: [...article.querySelectorAll("audio")].map((audio) => ({
        sources: audio.querySelectorAll("source").length,
        playable: audio.querySelector("source")?.src.startsWith("data:audio/") || false,
      })),
      widget_scripts: document.querySelectorAll(
        'script[type="application/vnd.jupyter.widget-view+json"]').length,
      launch_links: [...document.querySelectorAll("a[href]")]
        .map((a) => a.href)
        .filter((href) => /colab\.research\.google\.com|mybinder\.org/.test(href)),
      download_links: [...document.querySelectorAll("a[href]")]
        .map((a) => a.getAttribute("href"))
        .filter((href) => /_sources\/.*\.ipynb$/.test(href)),
      footer: document.querySelector(".bd-footer-content")?.innerText || "",
      // Every link to a file of the site, without its #part, once.
      local_links: [...new Set([...document.querySelectorAll("a[href]")]
        .filter((a) => a.protocol === "file:")
        .map((a) => decodeURIComponent(a.pathname)))],
    };
  });
}

async function accessibility(page) {
  await page.evaluate(axeSource);
  return page.evaluate(async () => {
    const result = await window.axe.run(document, {
      resultTypes: ["violations"],
    });
    return result.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      help: violation.help,
      nodes: violation.nodes.length,
      targets: violation.nodes.slice(0, 5).map((node) => node.target.join(" ")),
    }));
  });
}

async function search(browser, term, refused) {
  const url = pathToFileURL(join(site, "search.html"));
  url.search = new URLSearchParams({ q: term }).toString();
  const { page, errors } = await openPage(browser, url.href, refused);
  await page.waitForFunction(
    () => /Search finished|did not match/.test(
      document.querySelector("#search-results")?.innerText || ""),
    { timeout: 20000 }).catch((error) => errors.push(`no answer: ${error.message}`));
  const results = await page.evaluate(() =>
    [...document.querySelectorAll("#search-results ul.search li a")]
      .map((a) => a.getAttribute("href")));
  await page.close();
  return { results, errors };
}

async function checkPage(browser, file) {
  const name = relative(site, file).split("\\").join("/");
  const refused = [];
  const started = Date.now();
  if (/http-equiv="refresh"/.test(readFileSync(file, "utf8"))) {
    // A page that only sends the reader on: where it lands.
    const { page } = await openPage(browser, pathToFileURL(file).href, refused);
    await page.waitForFunction(
      (start) => location.href !== start && document.readyState === "complete",
      { timeout: 10000 }, pathToFileURL(file).href).catch(() => {});
    report.pages[name] = { redirects_to: relative(site, fileURLToPath(page.url())) };
    await page.close();
    return;
  }
  const { page, errors } = await openPage(browser, pathToFileURL(file).href, refused);
  await settle(page);
  const seen = await inspect(page);
  seen.broken_links = seen.local_links.filter((path) => !existsSync(path))
    .map((path) => relative(site, path));
  delete seen.local_links;
  seen.axe = await accessibility(page);
  seen.errors = errors;
  seen.refused = refused;
  seen.seconds = (Date.now() - started) / 1000;
  if (screenshots) {
    await page.screenshot({ path: join(screenshots, name.replace(/\//g, "_") + ".png") });
  }
  report.pages[name] = seen;
  report.refused.push(...refused);
  await page.close();
}

const report = { pages: {}, search: {}, refused: [] };
const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  report.chromium = await browser.version();
  if (screenshots) mkdirSync(screenshots, { recursive: true });
  // A few tabs at once: most of a page's time is axe and MathJax, one core each.
  const files = htmlFiles(site).sort();
  let next = 0;
  const worker = async () => {
    while (next < files.length) await checkPage(browser, files[next++]);
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  for (const term of searches) {
    const refused = [];
    report.search[term] = await search(browser, term, refused);
    report.refused.push(...refused);
  }
} finally {
  await browser.close();
  writeFileSync(reportPath, JSON.stringify(report, null, 1));
}
