// HTTP to mimd over its unix socket with node:http: keep-alive connections,
// bodies sent as one buffer or as a stream of chunks, answers read whole.
import * as http from 'node:http';

export class Client {
  /** @param {string} socketPath */
  constructor(socketPath, maxSockets = 128, timeoutMs = 300_000) {
    this.socketPath = socketPath;
    this.timeoutMs = timeoutMs;
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  /**
   * One request. `body`: undefined, a Buffer, or an array of Buffers written
   * one after the other with backpressure (a streamed upload).
   * Resolves with { status, headers, raw (Buffer), text, json } (json: parsed when JSON).
   */
  request(method, path, { body, contentType, headers = {} } = {}) {
    return new Promise((resolve, reject) => {
      const sent = { ...headers };
      if (body !== undefined) {
        sent['content-type'] = contentType ?? 'application/json';
        const length = Array.isArray(body) ? body.reduce((n, b) => n + b.length, 0) : body.length;
        sent['content-length'] = String(length);
      }
      const req = http.request({ socketPath: this.socketPath, agent: this.agent, method, path, headers: sent }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const raw = Buffer.concat(chunks);
          const text = raw.toString('utf8');
          let json = null;
          if ((res.headers['content-type'] ?? '').startsWith('application/json') && text !== '') {
            try {
              json = JSON.parse(text);
            } catch {
              json = null;
            }
          }
          resolve({ status: res.statusCode, headers: res.headers, raw, text, json });
        });
      });
      req.on('error', reject);
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer within ${this.timeoutMs} ms`)));
      if (body === undefined) return void req.end();
      if (!Array.isArray(body)) return void req.end(body);
      let i = 0;
      const pump = () => {
        while (i < body.length) {
          if (!req.write(body[i++])) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
  }

  /** Like request, but rejects unless the status is one of `ok`. */
  async expect(ok, method, path, options) {
    const res = await this.request(method, path, options);
    if (!ok.includes(res.status)) throw new HttpError(method, path, res);
    return res;
  }

  close() {
    this.agent.destroy();
  }
}

export class HttpError extends Error {
  constructor(method, path, res) {
    super(`${method} ${path}: ${res.status} ${res.text.slice(0, 300)}`);
    this.status = res.status;
    this.short = `${res.status} ${res.text.slice(0, 160)}`;
  }
}
