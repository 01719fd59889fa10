/** Where the `courier` command's admin listener binds by default (127.0.0.1:18083, as EMQX's port). */
export const DEFAULT_ADMIN_PORT = 18083;
export const DEFAULT_ADMIN_HOST = '127.0.0.1';
