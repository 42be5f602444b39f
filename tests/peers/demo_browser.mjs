// A person in a real browser (headless Debian Chromium, driven by playwright-core) tries
// `nymgate demo`: opens the platform, is sent to the school chooser, searches for a school,
// signs in at the demo school IdP's form, lands on the platform, reads what the platform knows
// about them, and signs out. A screenshot of every page goes to ARTIFACT_DIR.
//
// node demo_browser.mjs URL ARTIFACT_DIR VARIANT LOGIN SEARCH → prints the pages' texts as JSON
//   VARIANT: "en" (JavaScript on, English), "nojs" (JavaScript off), "sv" (Swedish); a variant
//   whose name contains "nojs" runs with JavaScript off, one that starts with "sv" in Swedish.
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [url, outDir, variant, login, search] = process.argv.slice(2);
const origin = new URL(url).origin;
const javaScript = !variant.includes('nojs');
mkdirSync(outDir, { recursive: true });

// The flags the machine's notes ask for: no sandbox as root, and nothing that reaches out to
// Google's hosts (the network is closed).
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const result = { variant, pages: {} };
try {
  // The demo's certificate is from a development CA made for this run.
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    javaScriptEnabled: javaScript,
    locale: variant.startsWith('sv') ? 'sv-SE' : 'en-GB',
  });
  const page = await context.newPage();
  let n = 0;
  const record = async (name) => {
    n += 1;
    await page.screenshot({ path: `${outDir}/${String(n).padStart(2, '0')}-${name}.png`, fullPage: true });
    result.pages[name] = {
      url: page.url(),
      title: await page.title(),
      lang: await page.getAttribute('html', 'lang'),
      text: await page.innerText('body'),
      html: await page.content(),
      // Accessibility basics a machine can check: every field has a label, every image a text.
      unlabelled: await page.evaluate(() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
        .map((e) => e.name || e.id || e.outerHTML)),
      images_without_alt: await page.locator('img:not([alt])').count(),
    };
  };

  await page.goto(url);
  await record('chooser');
  // Search by name, as a person would: the label names the field.
  await page.getByRole('searchbox').fill(search);
  await page.getByRole('searchbox').press('Enter');
  await page.waitForLoadState();
  await record('chooser-search');
  if (variant === 'en') {
    // Keyboard only, as a person who does not use a mouse: Tab to the school and press Enter.
    for (let tabs = 1; tabs <= 20 && !result.keyboard; tabs += 1) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(() => document.activeElement?.matches('main ul a') ?? false)) result.keyboard = tabs;
    }
    if (!result.keyboard) throw new Error('no school link is reachable with Tab');
    await page.keyboard.press('Enter');
  } else {
    await page.locator('main ul a').first().click();
  }
  await page.waitForLoadState();
  await record('idp-login');
  await page.locator('#login').fill(login);
  await page.locator('#password').fill('demo');
  await page.locator('form button[type=submit]').click();
  await page.waitForLoadState();
  if (new URL(page.url()).origin !== origin) {
    // A SAML school's IdP answers with a page that posts the Response to nymgate (HTTP-POST
    // binding): its script sends it at once; without JavaScript the person presses Continue.
    if (!javaScript) {
      await record('idp-continue');
      await page.locator('form button[type=submit]').click();
    }
    await page.waitForURL((u) => u.origin === origin);
    await page.waitForLoadState();
  }
  await record('platform');
  result.account_number = await page.locator('#claim-sub').innerText();
  result.role = await page.locator('#claim-role').innerText();
  await page.locator('a[href="/nymgate/me"]').click();
  await page.waitForLoadState();
  await record('transparency');
  await page.locator('a[href="/nymgate/logout"]').click();
  await page.waitForLoadState();
  await record('logged-out');
  // Signed out: the platform sends the browser to sign in again, with the school remembered.
  await page.goto(url);
  await record('chooser-again');
} catch (error) {
  result.error = String(error.stack ?? error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
