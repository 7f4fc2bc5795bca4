// Module resolution hooks for packages published for bundlers, whose ES modules import files
// without the `.js` extension that Node requires: retry such imports with `.js` appended.
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (error) {
    const retry = ["ERR_MODULE_NOT_FOUND", "ERR_UNSUPPORTED_DIR_IMPORT"];
    if (retry.includes(error.code) && !specifier.endsWith(".js")) {
      return next(`${specifier}.js`, context);
    }
    throw error;
  }
}
