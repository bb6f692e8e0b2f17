import type { Credentials } from './auth.js';
import { type ClientOptions, RegistryClient } from './client.js';

/**
 * Checks credentials against a registry the way `docker login` does: `GET /v2/` with Basic auth,
 * or a token from the Bearer realm without a scope. Resolves when they are accepted.
 * @throws RegistryError `Unauthorized` (wrong credentials), `Network`, `Auth`.
 */
export async function checkLogin(
  host: string,
  credentials: Credentials,
  options: Omit<ClientOptions, 'credentials'> & { signal?: AbortSignal } = {},
): Promise<void> {
  const client = new RegistryClient({ ...options, credentials });
  try {
    const res = await client.send(host, {
      method: 'GET',
      url: '/v2/',
      operation: `login to ${host}`,
      scopes: [],
      signal: options.signal,
    });
    await res.body.dump().catch(() => {});
  } finally {
    await client.close();
  }
}
