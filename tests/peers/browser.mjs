// A scripted browser for nymgate's tests: follows redirects with a cookie jar per host, fills in
// oidc-provider's login and consent forms and SimpleSAMLphp's login form, and submits the
// SAML HTTP-POST binding's auto-posting form (which a real browser's script would submit). TLS trust comes from NODE_EXTRA_CA_CERTS.
// CLI: node browser.mjs START_URL USER [STOP_PREFIX|-] [JAR.json] → prints the result as JSON.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

// The jar: host → name → value. Enough for __Host- cookies on one host per origin.
function storeCookies(jar, url, response) {
  const host = new URL(url).host;
  jar[host] ??= {};
  for (const line of response.headers.getSetCookie()) {
    const [pair, ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const gone = attributes.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a));
    if (gone) delete jar[host][name];
    else jar[host][name] = value;
  }
}

export function cookieHeader(jar, url) {
  const cookies = jar[new URL(url).host] ?? {};
  return Object.entries(cookies).map(([n, v]) => `${n}=${v}`).join('; ');
}

function unescapeHtml(text) {
  return text
    .replace(/&#x([0-9a-f]+);/gi, (_, hex) => String.fromCodePoint(parseInt(hex, 16)))
    .replace(/&#([0-9]+);/g, (_, dec) => String.fromCodePoint(parseInt(dec, 10)))
    .replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

// The first form of an HTML page: its action and its named inputs with their values.
function parseForm(html, base) {
  const form = html.match(/<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i);
  if (!form) return null;
  const fields = {};
  for (const input of form[2].matchAll(/<input([^>]*)>/gi)) {
    const name = input[1].match(/name="([^"]*)"/i)?.[1];
    const value = input[1].match(/value="([^"]*)"/i)?.[1] ?? '';
    if (name) fields[name] = unescapeHtml(value);
  }
  return { action: new URL(unescapeHtml(form[1]), base).href, fields };
}

// `method` and `body` (a form, URL-encoded) are the first request's: a POST binding's start.
export async function browse(startUrl, { user, password = 'x', jar = {}, maxSteps = 30, stopAt, method: firstMethod = 'GET', body: firstBody } = {}) {
  let url = startUrl;
  let method = firstMethod;
  let body = firstBody;
  const steps = [];
  for (let i = 0; i < maxSteps; i += 1) {
    if (stopAt && url.startsWith(stopAt)) return { url, status: null, headers: {}, body: '', jar, steps };
    const headers = { cookie: cookieHeader(jar, url), accept: 'text/html,application/json' };
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const response = await fetch(url, { method, headers, body, redirect: 'manual' });
    steps.push({ method, url, status: response.status });
    storeCookies(jar, url, response);
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      url = new URL(location, url).href;
      method = 'GET';
      body = undefined;
      continue;
    }
    const text = await response.text();
    const form = parseForm(text, url);
    const oidcInteraction = new URL(url).pathname.startsWith('/interaction/');
    const sspLogin = form && 'username' in form.fields && 'password' in form.fields;
    const samlPost = form && 'SAMLResponse' in form.fields;
    if (form && (oidcInteraction || sspLogin || samlPost)) {
      // oidc-provider's dev interactions: the login form, then the consent form.
      if (oidcInteraction && 'login' in form.fields) Object.assign(form.fields, { login: user, password });
      if (sspLogin) Object.assign(form.fields, { username: user, password });
      if (stopAt && form.action.startsWith(stopAt)) {
        return { url: form.action, status: response.status, form: form.fields, headers: {}, body: '', jar, steps };
      }
      url = form.action;
      method = 'POST';
      body = new URLSearchParams(form.fields).toString();
      continue;
    }
    return { url, status: response.status, headers: Object.fromEntries(response.headers), body: text, jar, steps };
  }
  throw new Error(`more than ${maxSteps} steps: ${JSON.stringify(steps)}`);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [start, user, stop, jarFile] = process.argv.slice(2);
  const jar = jarFile ? JSON.parse(readFileSync(jarFile, 'utf8')) : {};
  const result = await browse(start, { user, jar, stopAt: stop && stop !== '-' ? stop : undefined });
  console.log(JSON.stringify(result));
}
