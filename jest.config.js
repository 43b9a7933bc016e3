/** Jest runs the unit tests under labextension/src/__tests__ (jsdom, ts-jest). */
module.exports = {
  testEnvironment: 'jsdom',
  roots: ['<rootDir>/labextension/src'],
  testRegex: '/__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }]
  },
  setupFiles: ['<rootDir>/jest.setup.js'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  collectCoverageFrom: [
    'labextension/src/**/*.ts',
    '!labextension/src/**/*.d.ts',
    '!labextension/src/**/__tests__/**'
  ]
};
