/* sqlite-crr: C declarations for apps that link the extension statically.
 *
 *   #include <sqlite3.h>
 *   #include "crr.h"
 *   sqlite3_auto_extension((void (*)(void))sqlite3_crr_init);  // every new connection
 *
 * Or load the shared library: sqlite3_load_extension(db, "./dist/crr", "sqlite3_crr_init", &err).
 */
#ifndef SQLITE_CRR_H
#define SQLITE_CRR_H
#include <sqlite3.h>
#ifdef __cplusplus
extern "C" {
#endif
int sqlite3_crr_init(sqlite3 *db, char **pzErrMsg, const struct sqlite3_api_routines *pApi);
int sqlite3_crsqlite_init(sqlite3 *db, char **pzErrMsg, const struct sqlite3_api_routines *pApi);
#ifdef __cplusplus
}
#endif
#endif
