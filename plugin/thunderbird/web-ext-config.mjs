// web-ext reads this for `npm run lint` and `npm run build`: only the add-on goes into the .xpi.
export default {
  ignoreFiles: [
    "test",
    "test/**",
    "dist",
    "package.json",
    "package-lock.json",
    "web-ext-config.mjs",
  ],
};
