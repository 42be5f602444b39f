// A scripted browser for nymgate's tests: follows redirects with a cookie jar per host, and
// fills in oidc-provider's login and consent forms. TLS trust comes from NODE_EXTRA_CA_CERTS.
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

// The first form of an HTML page: its action and its named inputs with their values.
function parseForm(html, base) {
  const form = html.match(/<form[^>]*action="([^"]*)"[^>]*>([\s\S]*?)<\/form>/i);
  if (!form) return null;
  const fields = {};
  for (const input of form[2].matchAll(/<input([^>]*)>/gi)) {
    const name = input[1].match(/name="([^"]*)"/i)?.[1];
    const value = input[1].match(/value="([^"]*)"/i)?.[1] ?? '';
    if (name) fields[name] = value.replace(/&amp;/g, '&').replace(/&quot;/g, '"');
  }
  return { action: new URL(form[1].replace(/&amp;/g, '&'), base).href, fields };
}

export async function browse(startUrl, { user, password = 'x', jar = {}, maxSteps = 30, stopAt } = {}) {
  let url = startUrl;
  let method = 'GET';
  let body;
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
    const form = new URL(url).pathname.startsWith('/interaction/') ? parseForm(text, url) : null;
    if (form) {
      // oidc-provider's dev interactions: the login form, then the consent form.
      if ('login' in form.fields) Object.assign(form.fields, { login: user, password });
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
