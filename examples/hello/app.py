import asyncio

from dependency_injector import containers, providers

from plugin_di import App


class Database:
    async def start(self) -> None:
        print("database: connected")

    async def stop(self) -> None:
        print("database: closed")


class Api:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(self) -> None:
        print("api: listening")

    def stop(self) -> None:
        print("api: stopped")


class AppContainer(containers.DeclarativeContainer):
    db = providers.Singleton(Database)
    api = providers.Singleton(Api, db=db)


async def main() -> None:
    app = App(AppContainer)
    await app.start()  # database first: the api needs it
    await app.stop()  # api first, then the database


if __name__ == "__main__":
    asyncio.run(main())
